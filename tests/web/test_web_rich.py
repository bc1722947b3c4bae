"""The web client's richer features on the backend that exists for them (docs/web-client.md,
"Rich messaging"): message search, clickable links, notifications while the tab is hidden,
the group panel and the profile panel. Real Chromium against the live stack."""

import re
import time
import uuid

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.client import PASSWORD, User, register, single_cid
from tests.stack import gateway_url
from tests.web import test_web_client
from tests.web.test_web_client import (
    WAIT_MS,
    Pages,
    acked,
    chat_open_in_browsers,
    conversation_item,
    message,
    open_chat,
    rest_send,
    send,
    sign_in_with_tokens,
    start_chat,
)

pytestmark = pytest.mark.e2e

browser = test_web_client.browser
pages = test_web_client.pages


def wait_until_searchable(user: User, query: str, count: int = 1) -> None:
    """Search finds a message once the persistence worker stored it, shortly after its ack."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        r = user.get("/api/search", params={"q": query})
        assert r.status_code == 200, r.text
        if len(r.json()["results"]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{query!r} never became searchable")


# --- search ------------------------------------------------------------------------


def test_search_result_opens_the_conversation_scrolled_to_the_message_far_back(pages: Pages) -> None:
    reader, writer = register("srch"), register("srch", gateway_id="tgw2")
    cid = single_cid(reader, writer)
    sock = writer.ws()
    try:
        cmids = [sock.send_message(cid, "the pineapple plan" if i == 3 else f"filler {i}") for i in range(1, 81)]
        for cmid in cmids:
            assert sock.ack_for(cmid)["type"] == "ack"
    finally:
        sock.close()
    wait_until_searchable(reader, "pineapple")

    page = pages.new()
    sign_in_with_tokens(page, reader)
    page.fill("#user-search", "Pineapple")  # in another case
    hit = page.locator("#message-results .search-hit")
    expect(hit).to_have_count(1)
    expect(hit.locator(".hit-text")).to_contain_text("the pineapple plan")
    expect(hit.locator("mark")).to_have_text("pineapple")
    assert hit.get_attribute("data-cid") == cid
    hit.click()

    target = message(page, "the pineapple plan")
    expect(target).to_be_visible()  # three pages back from the newest: loaded for the jump
    expect(target).to_have_class(re.compile(r"\bflash\b"))
    expect(target).to_be_in_viewport()
    expect(message(page, "filler 80")).not_to_be_in_viewport()
    expect(page.locator("#message-results .search-hit")).to_have_count(0)  # the search closed


def test_search_with_one_letter_does_not_search_and_no_match_says_so(pages: Pages) -> None:
    me = register("srch1")
    page = pages.new()
    sign_in_with_tokens(page, me)
    page.fill("#user-search", "z")
    page.wait_for_timeout(600)
    expect(page.locator("#message-section")).to_be_hidden()
    page.fill("#user-search", "zzyzx-nothing")
    expect(page.locator("#message-empty")).to_be_visible()


# --- links -------------------------------------------------------------------------


def test_links_are_clickable_only_for_http_https_and_mailto(pages: Pages) -> None:
    sender, reader = register("link"), register("link")
    cid = single_cid(sender, reader)
    rest_send(sender, cid, "links follow")
    sender_page, reader_page = chat_open_in_browsers(pages, cid, sender, reader)
    dialogs: list[str] = []
    for page in (sender_page, reader_page):
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    good = "docs at https://example.com/a?b=1&c=2. or <mailto:team@example.com>, not www.example.com"
    bad = 'javascript:alert(1) <a href="javascript:alert(2)">x</a> <img src=x onerror=alert(3)> data:text/html,hi'
    send(sender_page, good)
    send(sender_page, bad)

    for page in (sender_page, reader_page):
        links = message(page, good).locator("a")
        expect(links).to_have_count(2)
        assert links.evaluate_all("els => els.map(a => [a.getAttribute('href'), a.textContent, a.target, a.rel])") == [
            ["https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2", "_blank", "noopener noreferrer"],
            ["mailto:team@example.com", "mailto:team@example.com", "_blank", "noopener noreferrer"],
        ]
        expect(message(page, good).locator(".msg-body")).to_have_text(good)
        expect(message(page, bad).locator(".msg-body")).to_have_text(bad)
        expect(message(page, bad).locator("a")).to_have_count(0)
        assert page.locator("#message-list img, #message-list script").count() == 0
    assert dialogs == []


# --- notifications -------------------------------------------------------------------

# Notifications made by the page are recorded instead of shown, and the page is made to
# believe it is hidden whenever the test says (a headless tab is always "visible").
FAKE_NOTIFICATIONS = """(() => {
  const Native = window.Notification;
  window.notes = [];
  window.permissionAsked = 0;
  window.fakeHidden = false;
  window.Notification = class {
    static get permission() { return Native.permission; }
    static requestPermission() { window.permissionAsked += 1; return Native.requestPermission(); }
    constructor(title, options) { window.notes.push({ title, body: options.body, tag: options.tag }); }
    close() {}
  };
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get() { return window.fakeHidden ? "hidden" : "visible"; },
  });
})();"""


def notes(page: Page) -> list[dict[str, str]]:
    return page.evaluate("window.notes")


def test_notifications_only_when_hidden_and_not_muted_after_the_bell_asks(pages: Pages, browser: Browser) -> None:
    alice, bob = register("ntfa"), register("ntfb")
    cid = single_cid(alice, bob)
    rest_send(alice, cid, "hello first")
    context = browser.new_context(base_url=gateway_url("tgw1"), viewport={"width": 1200, "height": 760})
    pages.contexts.append(context)
    context.grant_permissions(["notifications"])
    page = pages.new(context)
    page.add_init_script(FAKE_NOTIFICATIONS)
    sign_in_with_tokens(page, bob)
    expect(conversation_item(page, cid)).to_be_visible()

    # Nothing is asked, and nothing shown, before the person clicks the bell.
    page.evaluate("window.fakeHidden = true")
    rest_send(alice, cid, "before the bell")
    expect(conversation_item(page, cid).locator(".conv-preview")).to_have_text("before the bell")
    assert page.evaluate("window.permissionAsked") == 0 and notes(page) == []

    page.evaluate("window.fakeHidden = false")
    page.click("#notify")
    expect(page.locator("#notify")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("window.permissionAsked") == 1

    rest_send(alice, cid, "while you look")  # visible: no notification
    expect(conversation_item(page, cid).locator(".conv-preview")).to_have_text("while you look")
    page.evaluate("window.fakeHidden = true")
    rest_send(alice, cid, "while you are away")
    page.wait_for_function("() => window.notes.length === 1")
    assert notes(page) == [{"title": alice.username, "body": "while you are away", "tag": cid}]

    # Muted: the message arrives, quietly.
    page.evaluate("window.fakeHidden = false")
    conversation_item(page, cid).click(button="right")
    page.locator("#menu").get_by_role("menuitem", name="Mute").click()
    expect(conversation_item(page, cid)).to_have_class(re.compile(r"\bmuted\b"))
    page.evaluate("window.fakeHidden = true")
    rest_send(alice, cid, "muted and away")
    expect(conversation_item(page, cid).locator(".conv-preview")).to_have_text("muted and away")
    assert len(notes(page)) == 1

    # The bell again turns them off.
    page.evaluate("window.fakeHidden = false")
    page.click("#notify")
    expect(page.locator("#notify")).to_have_attribute("aria-pressed", "false")


# --- the group panel -----------------------------------------------------------------


def test_group_panel_renames_sets_roles_removes_and_leaves(pages: Pages) -> None:
    owner, bea, cal = register("gpo"), register("gpb"), register("gpc")
    r = owner.post("/api/groups", {"name": "Crew", "member_ids": [bea.id, cal.id]})
    assert r.status_code == 201, r.text
    group = r.json()
    cid = f"g_{group['id']}"
    owner_page, bea_page = pages.new(), pages.new()
    sign_in_with_tokens(owner_page, owner)
    sign_in_with_tokens(bea_page, bea)

    open_chat(owner_page, cid)
    owner_page.get_by_role("button", name="Group members and settings").click()
    panel = owner_page.locator("#group-panel")
    members = panel.locator("#group-members li.member")
    expect(members).to_have_count(3)
    expect(panel.locator(f'li.member[data-user-id="{owner.id}"] .role')).to_have_text("Owner")
    expect(panel.locator(f'li.member[data-user-id="{bea.id}"] .person-sub')).to_have_text(f"@{bea.username}")
    expect(panel.locator("#group-leave")).to_have_count(0)  # the owner dissolves instead

    panel.locator("#group-rename-input").fill("Renamed crew")
    panel.get_by_role("button", name="Rename").click()
    expect(owner_page.locator("#conv-title")).to_have_text("Renamed crew")
    expect(panel.locator("#group-panel-title")).to_have_text("Renamed crew")
    assert owner.get(f"/api/groups/{group['id']}").json()["name"] == "Renamed crew"

    panel.get_by_role("button", name=f"Make admin: {bea.username}").click()
    expect(panel.locator(f'li.member[data-user-id="{bea.id}"] .role')).to_have_text("Admin")
    panel.get_by_role("button", name=f"Remove {cal.username}").click()
    expect(members).to_have_count(2)
    expect(owner_page.locator("#conv-subtitle")).to_have_text("2 members")
    owner_page.keyboard.press("Escape")

    # Bea, an admin now: she may rename but not change roles; she leaves.
    open_chat(bea_page, cid)
    bea_page.get_by_role("button", name="Group members and settings").click()
    bea_panel = bea_page.locator("#group-panel")
    expect(bea_panel.locator(f'li.member[data-user-id="{bea.id}"] .role')).to_have_text("Admin")
    expect(bea_panel.locator("#group-rename-input")).to_be_visible()
    expect(bea_panel.get_by_role("button", name=re.compile("Make admin|Remove admin"))).to_have_count(0)
    bea_panel.locator("#group-leave").click()
    expect(bea_page.locator("#group-panel")).to_be_hidden()
    expect(conversation_item(bea_page, cid)).to_have_count(0)
    expect(bea_page.locator("#conversation")).to_be_hidden()
    members_now = owner.get(f"/api/groups/{group['id']}/members").json()["results"]
    assert [m["user_id"] for m in members_now] == [owner.id]


def test_group_panel_shows_the_servers_refusal(pages: Pages) -> None:
    owner, member = register("gpr"), register("gpr")
    r = owner.post("/api/groups", {"name": "Strict", "member_ids": [member.id]})
    assert r.status_code == 201, r.text
    group_id = r.json()["id"]
    page = pages.new()
    sign_in_with_tokens(page, member)
    open_chat(page, f"g_{group_id}")
    page.get_by_role("button", name="Group members and settings").click()
    expect(page.locator("#group-members li.member")).to_have_count(2)
    expect(page.locator("#group-rename-input")).to_have_count(0)  # a plain member
    # Removed meanwhile: leaving is refused, and the panel says why.
    assert owner.delete(f"/api/groups/{group_id}/members/{member.id}").status_code == 204
    page.locator("#group-leave").click()
    expect(page.locator("#group-panel-error")).not_to_have_text("")
    expect(page.locator("#group-panel")).to_be_visible()


# --- the profile panel ---------------------------------------------------------------


def test_profile_sets_the_nickname_and_changes_the_password(pages: Pages) -> None:
    me, peer = register("prof"), register("prof")
    page = pages.new()
    sign_in_with_tokens(page, me)
    page.click("#settings")
    page.fill("#profile-nickname", "Captain Ada")
    page.locator("#nickname-form").get_by_role("button", name="Save").click()
    expect(page.locator("#me-name")).to_have_text("Captain Ada")
    assert me.get("/api/users/me").json()["nickname"] == "Captain Ada"

    page.fill("#old-password", "not-my-password-1")
    page.fill("#new-password", "An0ther-fine-passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).not_to_have_text("")
    page.fill("#old-password", PASSWORD)
    page.fill("#new-password", "short")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_contain_text("too short")

    new_password = f"An0ther-fine-{uuid.uuid4().hex[:6]}"
    page.fill("#old-password", PASSWORD)
    page.fill("#new-password", new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#toast")).to_have_text("Your password is changed.")
    expect(page.locator("#password-error")).to_have_text("")
    assert me.post("/api/auth/refresh", {"refresh": me.refresh}).status_code == 401  # the old session's token

    # The page signed in again with the new password: a reload keeps the session and it still chats.
    page.keyboard.press("Escape")
    page.reload()
    expect(page.locator("#me-name")).to_have_text("Captain Ada")
    start_chat(page, peer.username)
    send(page, "still here")
    acked(page, "still here")
    login = requests.post(gateway_url() + "/api/auth/login", json={"username": me.username, "password": new_password},
                          timeout=10)
    assert login.status_code == 200
