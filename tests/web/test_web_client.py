"""The web client (web/, served at /) in a real browser: Playwright driving Debian's
Chromium against the live stack (two Daphne gateways, logic, Celery workers).

Every wait is on something visible (Playwright's expect/wait_for); nothing sleeps."""

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from tests.client import PASSWORD, User, register, single_cid
from tests.conftest import Db
from tests.stack import Stack, gateway_url, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STORAGE_KEY = "gochat.auth.v1"  # web/api.js keeps the tokens here, shared by every tab
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot-chat.png"
WAIT_MS = 15_000
IMPORT_FROM = re.compile(r'^import [^;]*? from "(\.{1,2}/[^"]+)";', re.M)  # a static import in web/*.js

T = TypeVar("T")

expect.set_options(timeout=WAIT_MS)


def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run Django ORM work on a plain thread: Playwright's sync API keeps an event loop
    on this one, and Django refuses synchronous queries there."""
    def run() -> T:
        from django.db import connections

        try:
            return fn(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Pages:
    """Browser contexts (one per signed-in person) and pages (tabs); JS errors fail the test."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def new(self, context: BrowserContext | None = None) -> Page:
        if context is None:
            context = self.browser.new_context(base_url=gateway_url("tgw1"), viewport={"width": 1200, "height": 760})
            self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    opened.close()
    assert not opened.errors, f"uncaught errors in the page: {opened.errors}"


# --- serving the client ------------------------------------------------------------


def test_client_files_are_served_with_their_types(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page["Content-Type"] == "text/html; charset=utf-8"
    assert b'src="/web/app.js"' in page.content
    assert "script-src 'self'" in page["Content-Security-Policy"]
    for path, content_type in (("/web/app.js", "text/javascript; charset=utf-8"),
                               ("/web/style.css", "text/css; charset=utf-8"),
                               ("/web/favicon.svg", "image/svg+xml")):
        r = client.get(path)
        assert r.status_code == 200 and r["Content-Type"] == content_type, path
        assert client.get(path, HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 304
    assert client.post("/").status_code == 405


def test_every_module_the_client_imports_is_served_as_javascript(client: Any) -> None:
    """The browser loads web/app.js as an ES module and follows its relative imports: each
    must name a file under web/ that is served with a JavaScript type (a module served as
    anything else is refused), and none may be left out of the graph."""
    web = ROOT / "web"
    imported = {"app.js"}
    for module in web.rglob("*.js"):
        for target in IMPORT_FROM.findall(module.read_text()):
            imported.add((module.parent / target).resolve().relative_to(web).as_posix())
    on_disk = {p.relative_to(web).as_posix() for p in web.rglob("*.js")}
    assert imported == on_disk, f"not imported: {on_disk - imported}; missing: {imported - on_disk}"
    assert len(on_disk) > 5
    for name in sorted(on_disk):
        r = client.get(f"/web/{name}")
        assert r.status_code == 200 and r["Content-Type"] == "text/javascript; charset=utf-8", name


@pytest.mark.parametrize("path", ["/web/", "/web/nope.js", "/web/%2e%2e/manage.py", "/web/..%2fmanage.py",
                                  "/web/../manage.py", "/web/%2e%2e/gochat_project/settings.py",
                                  "/web/.hidden", "/web/%2fetc%2fpasswd", "/web/..%5cmanage.py"])
def test_nothing_outside_web_is_served(client: Any, path: str) -> None:
    assert client.get(path).status_code == 404


# --- what a person does --------------------------------------------------------


def register_in_ui(page: Page, username: str, nickname: str) -> None:
    page.goto("/")
    page.click("#tab-register")
    page.fill("#auth-username", username)
    page.fill("#auth-nickname", nickname)
    page.fill("#auth-password", PASSWORD)
    page.click("#auth-submit")
    expect(page.locator("#me-name")).to_have_text(nickname)
    expect_online(page)


def sign_in_with_tokens(page: Page, user: User, access: str | None = None) -> None:
    """Tokens from the REST login, put where the client keeps them (registering through the
    UI is covered once; hashing a password per user would only slow the other tests)."""
    page.goto("/")
    session = {"access": access or user.access, "refresh": user.refresh,
               "user": {"id": user.id, "username": user.username, "nickname": ""}}
    page.evaluate("([key, value]) => localStorage.setItem(key, value)", [STORAGE_KEY, json.dumps(session)])
    page.reload()
    expect(page.locator("#me-name")).to_have_text(user.username)
    expect_online(page)


def expect_online(page: Page, timeout: float = WAIT_MS) -> None:
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open", timeout=timeout)


def start_chat(page: Page, username: str) -> None:
    page.fill("#user-search", username)
    page.locator("#search-results .person", has_text=username).click()
    expect(page.locator("#conversation")).to_be_visible()


def send(page: Page, text: str) -> None:
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")


def message(page: Page, text: str) -> Locator:
    return page.locator("#message-list li.msg").filter(has=page.get_by_text(text, exact=True))


def conversation_item(page: Page, cid: str) -> Locator:
    return page.locator(f'#conversation-list li.conv-item[data-cid="{cid}"]')


def recall_as_moderator(message_id: int, cid: str, seq: int) -> None:
    """What moderation does, in its own process (so its Kafka producer ends with it)."""
    code = ("from messaging import services; from messaging.gateway import upstream; "
            f"services.message_recall(message_id={message_id}, conversation_id={cid!r}, seq={seq}); "
            "upstream._producer().client.flush(10)")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, check=True, timeout=60)


def rest_send(user: User, cid: str, body: str) -> None:
    """Send over REST and return once the message is stored: a page that loads the
    conversation list only then is sure to list the conversation (a 1:1 is listed from
    the rows persistence writes with its first message) and to show it as its last."""
    r = user.post("/api/messages", {"conversation_id": cid, "client_msg_id": uuid.uuid4().hex, "body": body})
    assert r.status_code == 202, r.text
    wait_stored_last(user, cid, body)


def wait_stored_last(user: User, cid: str, body: str) -> None:
    """Until `user`'s conversation list shows `cid` with this last message: it is stored."""
    def last_body() -> str | None:
        for item in user.get("/api/conversations").json():
            if item["conversation_id"] == cid:
                return (item["last_message"] or {}).get("body")
        return None

    wait_until(lambda: last_body() == body, 30, f"{body!r} stored in {cid}", interval=0.2)


# --- tests -----------------------------------------------------------------------


def test_two_people_register_find_each_other_and_chat(pages: Pages) -> None:
    tag = uuid.uuid4().hex[:6]
    alice, bob = pages.new(), pages.new()
    register_in_ui(alice, f"alice_{tag}", "Alice")
    register_in_ui(bob, f"bob_{tag}", "Bob")

    start_chat(alice, f"bob_{tag}")
    expect(alice.locator("#conv-title")).to_have_text("Bob")
    expect(alice.locator("#conv-subtitle")).to_contain_text("online")
    send(alice, "Hi Bob! Are you there?")
    first = message(alice, "Hi Bob! Are you there?")
    expect(first.locator(".msg-status")).to_have_text("Sent")  # shown as pending until the ack
    cid = alice.locator("#conversation-list li.conv-item.active").get_attribute("data-cid")
    assert cid is not None and re.fullmatch(r"s_\d+_\d+", cid)

    # Bob has nothing open: the conversation appears with an unread badge that counts.
    item = conversation_item(bob, cid)
    expect(item.locator(".conv-name")).to_have_text("Alice")
    expect(item.locator(".badge")).to_have_text("1")
    send(alice, "I wanted to show you GoChat.")
    expect(item.locator(".badge")).to_have_text("2")
    expect(item.locator(".conv-preview")).to_have_text("I wanted to show you GoChat.")
    expect(alice.locator("#message-list .msg-status.read")).to_have_count(0)

    # Bob opens it: the badge goes, and Alice sees that Bob read her messages.
    item.click()
    expect(message(bob, "Hi Bob! Are you there?")).to_be_visible()
    expect(message(bob, "I wanted to show you GoChat.")).to_be_visible()
    expect(item.locator(".badge")).to_have_count(0)
    expect(message(alice, "I wanted to show you GoChat.").locator(".msg-status")).to_have_text("Read")

    # And back the other way.
    send(bob, "Hey Alice, yes! Messages show up instantly.")
    expect(message(alice, "Hey Alice, yes! Messages show up instantly.")).to_be_visible()
    send(bob, "And I can see when you have read them.")
    expect(message(alice, "And I can see when you have read them.")).to_be_visible()
    expect(message(bob, "And I can see when you have read them.").locator(".msg-status")).to_have_text("Read")
    expect(conversation_item(alice, cid).locator(".badge")).to_have_count(0)
    expect(conversation_item(alice, cid).locator(".presence.online")).to_have_count(1)
    send(alice, "Nice. Let's start a group for the team next.")
    expect(message(alice, "Nice. Let's start a group for the team next.").locator(".msg-status")).to_have_text(
        "Read")


def signed_in_user(page: Page) -> User:
    """The User whose tokens this page keeps (registered through the UI), for REST calls."""
    session = json.loads(page.evaluate("key => localStorage.getItem(key)", STORAGE_KEY))
    return User(session["user"]["id"], session["user"]["username"], session["access"], session["refresh"])


def react(page: Page, text: str, emoji: str) -> None:
    """Pick `emoji` for a message from its reaction picker, and wait for the count."""
    item = message(page, text)
    item.hover()
    item.get_by_role("button", name="Add a reaction").click()
    page.locator("#menu").get_by_role("menuitem").filter(has_text=emoji).click()
    expect(item.locator(f'.reaction[data-emoji="{emoji}"][aria-pressed="true"]')).to_be_visible()


def test_screenshot_shows_a_reply_reactions_and_search(pages: Pages) -> None:
    """docs/screenshot-chat.png (in README.md): a conversation with a reply and its quote,
    reactions (one of them mine), and the sidebar's search listing the messages that match,
    all made through the UI."""
    tag = uuid.uuid4().hex[:6]
    alice, bob = pages.new(), pages.new()
    register_in_ui(alice, f"alice_{tag}", "Alice")
    register_in_ui(bob, f"bob_{tag}", "Bob")
    start_chat(alice, f"bob_{tag}")
    cid = alice.locator("#conversation-list li.conv-item.active").get_attribute("data-cid")
    assert cid is not None
    start_chat(bob, f"alice_{tag}")

    lines = [(bob, "Morning! Is the demo still on for Friday?"),
             (alice, "Yes! I'm polishing the slides tonight."),
             (bob, "Can we show search in the demo?")]
    for page, text in lines:
        send(page, text)
        acked(page, text)
        expect(message(alice if page is bob else bob, text)).to_be_visible()

    question = "Can we show search in the demo?"
    message_menu(alice, question).filter(has_text="Reply").click()
    answer = "Already in: type a word in the sidebar and every match shows up."
    send(alice, answer)
    acked(alice, answer)
    closing = "Perfect, the team is going to love it"
    send(bob, closing)
    expect(message(alice, closing)).to_be_visible()
    quote = message(alice, answer).locator(".reply-quote")
    expect(quote.locator(".quote-who")).to_have_text("Bob")
    expect(quote.locator(".quote-text")).to_have_text(question)

    # ❤️ alone: the test machine's fonts draw it, not the picker's other emoji.
    react(bob, answer, "❤️")
    react(bob, closing, "❤️")
    react(alice, closing, "❤️")
    expect(message(alice, answer).locator('.reaction[data-emoji="❤️"]')).to_have_attribute("aria-pressed", "false")
    expect(message(alice, closing).locator('.reaction[data-emoji="❤️"] .count')).to_have_text("2")

    # Search finds a message once the persistence worker stored it, shortly after its ack.
    me = signed_in_user(alice)
    for _ in range(WAIT_MS // 200):
        r = me.get("/api/search", params={"q": "demo"})
        assert r.status_code == 200, r.text
        if len(r.json()["results"]) >= 2:
            break
        alice.wait_for_timeout(200)
    alice.fill("#user-search", "demo")
    expect(alice.locator("#message-results .search-hit")).to_have_count(2)
    expect(alice.locator("#conversation")).to_be_visible()
    alice.mouse.move(780, 40)  # nothing hovered: no action buttons in the picture

    SCREENSHOT.parent.mkdir(exist_ok=True)
    alice.screenshot(path=str(SCREENSHOT))


def test_group_chat_of_three(pages: Pages) -> None:
    owner, bea, cal = register("gown"), register("gbea"), register("gcal")
    owner_page, bea_page, cal_page = pages.new(), pages.new(), pages.new()
    for page, user in ((owner_page, owner), (bea_page, bea), (cal_page, cal)):
        sign_in_with_tokens(page, user)

    owner_page.click("#new-group")
    owner_page.fill("#group-name", "Weekend trip")
    for member in (bea, cal):
        owner_page.fill("#group-search", member.username)
        owner_page.locator(f'#group-search-results .person[data-username="{member.username}"]').click()
        expect(owner_page.locator("#group-chips .chip", has_text=member.username)).to_be_visible()
    owner_page.click("#group-create")
    expect(owner_page.locator("#conv-title")).to_have_text("Weekend trip")
    expect(owner_page.locator("#conv-subtitle")).to_have_text("3 members")
    cid = owner_page.locator("#conversation-list li.conv-item.active").get_attribute("data-cid")
    assert cid is not None and re.fullmatch(r"g_\d+", cid)

    send(owner_page, "Who is in for Saturday?")
    expect(message(owner_page, "Who is in for Saturday?").locator(".msg-status")).to_have_text("Sent")

    for page in (bea_page, cal_page):
        item = conversation_item(page, cid)
        expect(item.locator(".conv-name")).to_have_text("Weekend trip")
        expect(item.locator(".badge")).to_have_text("1")
        expect(item.locator(".conv-preview")).to_have_text(f"{owner.username}: Who is in for Saturday?")

    conversation_item(bea_page, cid).click()
    expect(message(bea_page, "Who is in for Saturday?").locator(".msg-sender")).to_have_text(owner.username)
    send(bea_page, "Count me in!")
    expect(message(owner_page, "Count me in!").locator(".msg-sender")).to_have_text(bea.username)
    expect(conversation_item(cal_page, cid).locator(".badge")).to_have_text("2")

    conversation_item(cal_page, cid).click()
    expect(message(cal_page, "Who is in for Saturday?")).to_be_visible()
    expect(message(cal_page, "Count me in!").locator(".msg-sender")).to_have_text(bea.username)
    send(cal_page, "Me too.")
    for page in (owner_page, bea_page):
        expect(message(page, "Me too.").locator(".msg-sender")).to_have_text(cal.username)
    expect(cal_page.locator("#message-list li.msg")).to_have_count(3)


def test_html_in_messages_is_shown_as_text(pages: Pages) -> None:
    sender, reader = register("xss"), register("xss")
    sender_page, reader_page = pages.new(), pages.new()
    dialogs: list[str] = []
    for page in (sender_page, reader_page):
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in_with_tokens(sender_page, sender)
    sign_in_with_tokens(reader_page, reader)

    script = "<script>alert(1)</script>"
    image = '<img src=x onerror="alert(document.domain)">'
    start_chat(sender_page, reader.username)
    send(sender_page, script)
    send(sender_page, image)
    cid = single_cid(sender, reader)
    expect(conversation_item(reader_page, cid).locator(".conv-preview")).to_have_text(image)
    conversation_item(reader_page, cid).click()

    for page in (sender_page, reader_page):
        expect(message(page, script).locator(".msg-body")).to_have_text(script)
        expect(message(page, image).locator(".msg-body")).to_have_text(image)
        assert page.locator("#message-list img, #message-list script, #conversation-list img").count() == 0
    wait_stored_last(sender, cid, image)  # a reloaded page lists a new 1:1 once it is stored
    sender_page.reload()  # history renders the same way
    conversation_item(sender_page, cid).click()
    expect(message(sender_page, image)).to_be_visible()
    assert sender_page.locator("#message-list img").count() == 0
    assert dialogs == []


def test_history_pages_backwards_on_scroll(pages: Pages) -> None:
    reader, writer = register("hist"), register("hist", gateway_id="tgw2")
    cid = single_cid(reader, writer)
    sock = writer.ws()
    try:
        cmids = [sock.send_message(cid, f"message {i}") for i in range(1, 71)]
        for cmid in cmids:
            assert sock.ack_for(cmid)["type"] == "ack"
    finally:
        sock.close()
    wait_stored_last(reader, cid, "message 70")  # scrolling back reads stored history

    page = pages.new()
    sign_in_with_tokens(page, reader)
    expect(conversation_item(page, cid).locator(".badge")).to_have_text("70")
    conversation_item(page, cid).click()
    expect(message(page, "message 70")).to_be_visible()
    messages = page.locator("#message-list li.msg")
    assert messages.count() < 70  # the newest page only
    assert message(page, "message 1").count() == 0

    for _ in range(10):
        if message(page, "message 1").count():
            break
        shown = messages.count()
        page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
        page.wait_for_function("n => document.querySelectorAll('#message-list li.msg').length > n", arg=shown)
    expect(message(page, "message 1")).to_be_visible()
    expect(page.locator("#history-status")).to_have_text("This is the beginning of the conversation.")
    expect(messages).to_have_count(70)  # every seq once, in order
    seqs = [int(s) for s in messages.evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == list(range(1, 71))


def test_two_tabs_share_the_login_see_recalls_and_log_out_together(pages: Pages, db_reader: Db) -> None:
    me, peer = register("tabs"), register("tabs", gateway_id="tgw2")
    cid = single_cid(me, peer)
    tab1 = pages.new()
    sign_in_with_tokens(tab1, me)
    tab2 = pages.new(context=tab1.context)
    tab2.goto("/")  # no sign-in: the tokens are shared through localStorage
    expect(tab2.locator("#me-name")).to_have_text(me.username)
    expect_online(tab2)

    rest_send(peer, cid, "a secret")
    for tab in (tab1, tab2):
        expect(conversation_item(tab, cid).locator(".badge")).to_have_text("1")
    conversation_item(tab1, cid).click()
    expect(message(tab1, "a secret")).to_be_visible()
    expect(conversation_item(tab2, cid).locator(".badge")).to_have_count(0)  # the read reached the other tab

    conversation_item(tab2, cid).click()
    send(tab2, "from the second tab")
    expect(message(tab2, "from the second tab").locator(".msg-status")).to_have_text("Sent")
    expect(message(tab1, "from the second tab")).to_have_class(re.compile(r"\bmine\b"))
    expect(message(tab1, "from the second tab")).to_have_count(1)

    # A moderator recalls the peer's message: both tabs show it as recalled, and so does history.
    rows = off_loop(db_reader.wait_stored, cid, 2)
    seq, message_id = next((s, m) for s, m, _ in rows if s == 1)

    recall_as_moderator(int(message_id), cid, seq)
    for tab in (tab1, tab2):
        expect(tab.locator(f'#message-list li.msg[data-seq="{seq}"] .msg-body')).to_have_text(
            "This message was recalled")
        expect(message(tab, "a secret")).to_have_count(0)
    tab1.reload()
    conversation_item(tab1, cid).click()
    expect(tab1.locator(f'#message-list li.msg[data-seq="{seq}"]')).to_have_class(re.compile(r"\brecalled\b"))

    # Logging out in one tab logs out both, and the refresh token stops working.
    refresh = json.loads(tab1.evaluate("key => localStorage.getItem(key)", STORAGE_KEY))["refresh"]
    with tab1.expect_response(lambda r: r.url.endswith("/api/auth/logout")) as logout:
        tab1.click("#logout")
    assert logout.value.status == 205
    for tab in (tab1, tab2):
        expect(tab.locator("#auth-view")).to_be_visible()
    r = requests.post(gateway_url("tgw1") + "/api/auth/refresh", json={"refresh": refresh}, timeout=10)
    assert r.status_code == 401, r.text


# --- everyday features (issue 10): typing, recall, delete for me, block, mute and pin ---


def open_chat(page: Page, cid: str) -> None:
    conversation_item(page, cid).click()
    expect(page.locator("#conversation")).to_be_visible()


def chat_open_in_browsers(pages: Pages, cid: str, *users: User) -> list[Page]:
    """A browser per user, signed in, with the conversation `cid` open."""
    opened = [pages.new() for _ in users]
    for page, user in zip(opened, users, strict=True):
        sign_in_with_tokens(page, user)
        open_chat(page, cid)
    return opened


def acked(page: Page, text: str) -> None:
    """Wait until the ack gave the message its id (only then does it have actions)."""
    expect(message(page, text).locator(".msg-status")).to_have_text(re.compile("Sent|Read"))


def message_menu(page: Page, text: str) -> Locator:
    """Open a message's actions menu (the button shows on hover); the menu's items."""
    item = message(page, text)
    item.hover()
    item.get_by_role("button", name="Message actions").click()
    return page.locator("#menu").get_by_role("menuitem")


def cids_in_list(page: Page) -> list[str]:
    return page.locator("#conversation-list li.conv-item").evaluate_all("els => els.map(e => e.dataset.cid)")


def test_typing_dots_show_in_the_peers_browser_and_go_away(pages: Pages) -> None:
    typer, watcher = register("typ"), register("typ", gateway_id="tgw2")
    cid = single_cid(typer, watcher)
    rest_send(watcher, cid, "what are you up to?")
    typer_page, watcher_page = chat_open_in_browsers(pages, cid, typer, watcher)
    typer_page.evaluate("""() => {  // count the typing frames the page sends on its open socket
        window.typingSent = 0;
        const send = WebSocket.prototype.send;
        WebSocket.prototype.send = function (data) {
            if (JSON.parse(data).type === "typing") window.typingSent += 1;
            return send.call(this, data);
        };
    }""")

    typer_page.locator("#composer-input").press_sequentially("writing a long answer", delay=20)
    dots = watcher_page.locator("#typing")
    expect(dots).to_be_visible()
    expect(watcher_page.locator("#typing-text")).to_have_text(f"{typer.username} is typing")
    expect(conversation_item(watcher_page, cid).locator(".conv-preview")).to_have_text("typing…")
    assert typer_page.evaluate("window.typingSent") == 1  # throttled: one frame for the burst of keystrokes

    # No more typing: the dots go after ~5 s, and the preview is the last message again.
    expect(dots).to_be_hidden(timeout=9_000)
    expect(conversation_item(watcher_page, cid).locator(".conv-preview")).to_have_text("You: what are you up to?")

    # Typing again shows them; the typer's message arriving takes them away at once.
    typer_page.locator("#composer-input").press_sequentially(", done", delay=20)
    expect(dots).to_be_visible()
    typer_page.press("#composer-input", "Enter")
    expect(message(watcher_page, "writing a long answer, done")).to_be_visible()
    expect(dots).to_be_hidden(timeout=2_000)


def test_recall_of_own_message_shows_the_placeholder_in_both_browsers(pages: Pages) -> None:
    me, peer = register("rec"), register("rec", gateway_id="tgw2")
    cid = single_cid(me, peer)
    rest_send(peer, cid, "hello there")
    my_page, peer_page = chat_open_in_browsers(pages, cid, me, peer)

    # Someone else's message can be deleted for me, not recalled.
    items = message_menu(my_page, "hello there")
    expect(items).to_have_text(["Reply", "React", "Delete for me"])
    my_page.keyboard.press("Escape")
    expect(my_page.locator("#menu")).to_be_hidden()

    send(my_page, "oops, wrong chat")
    acked(my_page, "oops, wrong chat")
    expect(message(peer_page, "oops, wrong chat")).to_be_visible()
    items = message_menu(my_page, "oops, wrong chat")
    expect(items).to_have_text(["Reply", "React", "Edit", "Recall", "Delete for me"])
    items.filter(has_text="Recall").click()

    recalled = "#message-list li.msg.recalled .msg-body"
    expect(my_page.locator(recalled)).to_have_text("You recalled a message")
    expect(peer_page.locator(recalled)).to_have_text("This message was recalled")
    for page in (my_page, peer_page):
        expect(message(page, "oops, wrong chat")).to_have_count(0)
        expect(conversation_item(page, cid).locator(".conv-preview")).to_contain_text("Message recalled")
    peer_page.reload()  # history says so too
    open_chat(peer_page, cid)
    expect(peer_page.locator(recalled)).to_have_text("This message was recalled")
    expect(message(peer_page, "hello there")).to_be_visible()


def test_delete_for_me_hides_the_message_in_my_other_tab_but_not_for_the_peer(pages: Pages) -> None:
    me, peer = register("hide"), register("hide", gateway_id="tgw2")
    cid = single_cid(me, peer)
    rest_send(peer, cid, "keep this one")
    tab1, peer_page = chat_open_in_browsers(pages, cid, me, peer)
    tab2 = pages.new(context=tab1.context)  # signed in through the shared localStorage
    tab2.goto("/")
    expect_online(tab2)
    open_chat(tab2, cid)
    send(peer_page, "delete this one")
    for page in (tab1, tab2):
        expect(message(page, "delete this one")).to_be_visible()

    message_menu(tab1, "delete this one").filter(has_text="Delete for me").click()
    for tab in (tab1, tab2):  # the other tab hears of it from the server's `hidden` frame
        expect(message(tab, "delete this one")).to_have_count(0)
        expect(message(tab, "keep this one")).to_be_visible()
        expect(conversation_item(tab, cid).locator(".conv-preview")).to_have_text("keep this one")
    expect(message(peer_page, "delete this one")).to_be_visible()
    tab2.reload()
    open_chat(tab2, cid)
    expect(message(tab2, "keep this one")).to_be_visible()
    expect(message(tab2, "delete this one")).to_have_count(0)


def test_block_from_the_profile_stops_their_messages_until_unblocked(pages: Pages) -> None:
    me, pest = register("blk"), register("blk", gateway_id="tgw2")
    cid = single_cid(me, pest)
    rest_send(pest, cid, "hi, it is me again")
    my_page, pest_page = chat_open_in_browsers(pages, cid, me, pest)

    my_page.get_by_role("button", name="View profile").click()
    profile = my_page.locator("#profile-dialog")
    expect(profile.locator("#profile-title")).to_have_text(pest.username)
    profile.get_by_role("button", name="Block", exact=True).click()
    expect(profile.get_by_role("button", name="Unblock", exact=True)).to_be_visible()
    profile.get_by_role("button", name="Close").click()
    expect(my_page.locator("#conv-notice")).to_contain_text(f"You blocked {pest.username}")

    send(pest_page, "why no answer?")
    refused = message(pest_page, "why no answer?")
    expect(refused).to_have_class(re.compile(r"\bfailed\b"))
    expect(refused.locator(".msg-status")).to_have_text("you cannot message this user")  # the server's words

    # My blocked list (in my profile panel) comes from the server, also after a reload.
    my_page.reload()
    expect_online(my_page)
    my_page.get_by_role("button", name="Profile and blocked people").click()
    expect(profile.locator(".blocked-list .person")).to_have_count(1)
    expect(profile.locator(".blocked-list .person-sub")).to_have_text(f"@{pest.username}")
    profile.get_by_role("button", name=f"Unblock {pest.username}").click()
    expect(profile.locator(".empty-hint")).to_have_text("You have not blocked anyone.")
    profile.get_by_role("button", name="Close").click()

    refused.locator(".retry").click()  # the same client_msg_id: now accepted
    acked(pest_page, "why no answer?")
    expect(conversation_item(my_page, cid).locator(".conv-preview")).to_have_text("why no answer?")
    open_chat(my_page, cid)
    expect(message(my_page, "why no answer?")).to_have_count(1)


def test_pinned_conversation_goes_to_the_top_and_muted_one_is_quiet_after_a_reload(pages: Pages) -> None:
    me = register("pin")
    peers = [register("pin", gateway_id="tgw2") for _ in range(3)]
    cids = [single_cid(me, p) for p in peers]
    for i, (peer, cid) in enumerate(zip(peers, cids, strict=True)):
        rest_send(peer, cid, f"news {i}")
    page = pages.new()
    sign_in_with_tokens(page, me)
    expect(page.locator("#conversation-list li.conv-item")).to_have_count(3)
    expect(page).to_have_title("(3) GoChat")
    order = cids_in_list(page)
    bottom, middle = order[2], order[1]

    def choose(cid: str, option: str) -> None:
        conversation_item(page, cid).get_by_role("button", name=re.compile("^Options for")).click()
        page.locator("#menu").get_by_role("menuitem", name=option, exact=True).click()

    choose(bottom, "Pin to top")
    expect(conversation_item(page, bottom).locator(".conv-flag.pinned")).to_be_visible()
    page.wait_for_function("cid => document.querySelector('#conversation-list li.conv-item').dataset.cid === cid",
                           arg=bottom)
    choose(middle, "Mute")
    expect(conversation_item(page, middle).locator(".conv-flag.muted")).to_be_visible()
    expect(page).to_have_title("(2) GoChat")  # a muted conversation's unread count stays out of the title

    # A new message in the muted conversation: counted quietly, in a grey badge.
    muted_peer = peers[cids.index(middle)]
    rest_send(muted_peer, middle, "more news")
    badge = conversation_item(page, middle).locator(".badge")
    expect(badge).to_have_text("2")
    expect(badge).to_have_class(re.compile(r"\bmuted\b"))
    expect(page).to_have_title("(2) GoChat")
    assert cids_in_list(page)[0] == bottom  # still on top, though another conversation is newer

    page.reload()
    expect_online(page)
    expect(page.locator("#conversation-list li.conv-item")).to_have_count(3)
    assert cids_in_list(page)[0] == bottom
    expect(conversation_item(page, bottom).locator(".conv-flag.pinned")).to_be_visible()
    expect(conversation_item(page, middle).locator(".conv-flag.muted")).to_be_visible()
    expect(conversation_item(page, middle)).to_have_attribute("aria-label", re.compile(r", muted, 2 unread$"))

    # The context menu (right click) offers the same; unpinning takes the pin away.
    conversation_item(page, bottom).click(button="right")
    page.locator("#menu").get_by_role("menuitem", name="Unpin", exact=True).click()
    expect(conversation_item(page, bottom).locator(".conv-flag.pinned")).to_have_count(0)
    expect(page.locator("#conversation-list .conv-flag.pinned")).to_have_count(0)


def test_access_token_is_refreshed_before_it_expires(pages: Pages) -> None:
    from rest_framework_simplejwt.tokens import AccessToken

    user = register("tok")
    short = AccessToken()
    short.set_exp(lifetime=timedelta(seconds=12))
    short["user_id"] = user.id
    page = pages.new()
    sign_in_with_tokens(page, user, access=str(short))

    page.wait_for_function("([key, old]) => JSON.parse(localStorage.getItem(key) || '{}').access !== old",
                           arg=[STORAGE_KEY, str(short)], timeout=20_000)
    stored = json.loads(page.evaluate("key => localStorage.getItem(key)", STORAGE_KEY))
    assert stored["refresh"] != user.refresh  # rotated
    base = gateway_url("tgw1")
    assert requests.post(f"{base}/api/auth/refresh", json={"refresh": user.refresh}, timeout=10).status_code == 401
    me = requests.get(f"{base}/api/users/me", headers={"Authorization": f"Bearer {stored['access']}"}, timeout=10)
    assert me.status_code == 200 and me.json()["id"] == user.id
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")


def test_reconnects_after_gateway_restart_and_shows_what_was_missed(stack: Stack, pages: Pages,
                                                                    db_reader: Db) -> None:
    me, peer = register("gwr"), register("gwr", gateway_id="tgw2")
    cid = single_cid(me, peer)
    page = pages.new()
    sign_in_with_tokens(page, me)
    rest_send(peer, cid, "before the restart")
    conversation_item(page, cid).click()
    expect(message(page, "before the restart")).to_be_visible()

    gateway = stack.gateways["tgw1"]  # the one serving the page and its WebSocket
    try:
        gateway.stop()
        expect(page.locator("#conn-status")).not_to_have_attribute("data-state", "open")
        rest_send(peer, cid, "sent while you were away (1)")
        rest_send(peer, cid, "sent while you were away (2)")
        send(page, "typed while offline")
        expect(message(page, "typed while offline").locator(".msg-status")).to_have_text("Sending…")
        failed = page.locator("#message-list li.msg.failed")
        expect(failed).to_have_count(1, timeout=20_000)  # no ack within ~10 s
        cmid = failed.get_attribute("data-cmid")
    finally:
        if not gateway.running():
            gateway.start()

    expect_online(page, timeout=30_000)  # jittered backoff, then sync
    expect(message(page, "sent while you were away (1)")).to_be_visible()
    expect(message(page, "sent while you were away (2)")).to_be_visible()

    failed.locator(".retry").click()  # the same client_msg_id again
    expect(message(page, "typed while offline").locator(".msg-status")).to_have_text(re.compile("Sent|Read"))
    rows = off_loop(db_reader.wait_stored, cid, 4)
    assert [c for _, _, c in rows].count(cmid) == 1
    expect(page.locator("#message-list li.msg")).to_have_count(4)
    seqs = [int(s) for s in page.locator("#message-list li.msg").evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == [1, 2, 3, 4]
