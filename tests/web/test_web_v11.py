"""The web client's v1.1 features (docs/web-client.md, "Rich messaging"): reply, edit,
reactions, mentions and live presence, in real Chromium against the live stack."""

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.client import User, register, single_cid
from tests.web import test_web_client
from tests.web.test_web_client import (
    Pages,
    acked,
    chat_open_in_browsers,
    conversation_item,
    message,
    message_menu,
    open_chat,
    rest_send,
    send,
    sign_in_with_tokens,
)

pytestmark = pytest.mark.e2e

browser = test_web_client.browser
pages = test_web_client.pages


def history(user: User, cid: str) -> list[dict]:
    r = user.get(f"/api/conversations/{cid}/messages", params={"limit": 200})
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def body_is(page: Page, text: str) -> Locator:
    """The message whose own text is `text` (a reply's quote of it does not count)."""
    return page.locator("#message-list li.msg").filter(
        has=page.locator(".msg-body", has_text=re.compile(f"^{re.escape(text)}$")))


def stored(user: User, cid: str, body: str) -> dict:
    found = [m for m in history(user, cid) if m["body"] == body]
    assert len(found) == 1, found
    return found[0]


# --- reply ---------------------------------------------------------------------------


def test_reply_shows_the_quote_in_both_browsers_and_is_stored_with_reply_to(pages: Pages) -> None:
    me, peer = register("rply"), register("rply", gateway_id="tgw2")
    cid = single_cid(me, peer)
    rest_send(peer, cid, "lunch at noon?")
    my_page, peer_page = chat_open_in_browsers(pages, cid, me, peer)

    message_menu(my_page, "lunch at noon?").filter(has_text="Reply").click()
    expect(my_page.locator("#composer-context")).to_contain_text(f"Replying to {peer.username}")
    expect(my_page.locator("#composer-input")).to_be_focused()
    send(my_page, "yes, see you there")
    acked(my_page, "yes, see you there")
    expect(my_page.locator("#composer-context")).to_be_hidden()  # one reply, then plain sends again

    for page, who in ((my_page, peer.username), (peer_page, "You")):
        quote = message(page, "yes, see you there").locator(".reply-quote")
        expect(quote.locator(".quote-who")).to_have_text(who)
        expect(quote.locator(".quote-text")).to_have_text("lunch at noon?")
    original = stored(me, cid, "lunch at noon?")
    assert stored(me, cid, "yes, see you there")["reply_to"] == {
        "message_id": original["message_id"], "seq": original["seq"], "sender_id": peer.id,
    }

    # Escape cancels a reply: the next send is a plain message.
    original_item = body_is(my_page, "lunch at noon?")
    original_item.hover()
    original_item.get_by_role("button", name="Message actions").click()
    my_page.locator("#menu").get_by_role("menuitem", name="Reply").click()
    expect(my_page.locator("#composer-context")).to_be_visible()
    my_page.press("#composer-input", "Escape")
    expect(my_page.locator("#composer-context")).to_be_hidden()
    send(my_page, "plain again")
    acked(my_page, "plain again")
    expect(message(my_page, "plain again").locator(".reply-quote")).to_have_count(0)


def test_clicking_a_quote_loads_history_back_to_the_original_and_marks_it(pages: Pages) -> None:
    me, peer = register("rplh"), register("rplh", gateway_id="tgw2")
    cid = single_cid(me, peer)
    sock = peer.ws()
    try:
        first = sock.send_message(cid, "the very first words")
        original = sock.ack_for(first)
        for cmid in [sock.send_message(cid, f"filler {i}") for i in range(1, 71)]:
            assert sock.ack_for(cmid)["type"] == "ack"
        answer = sock.send_message(cid, "answering myself", reply_to=str(original["message_id"]))
        assert sock.ack_for(answer)["type"] == "ack"
    finally:
        sock.close()

    page = pages.new()
    sign_in_with_tokens(page, me)
    open_chat(page, cid)
    quote = message(page, "answering myself").locator(".reply-quote")
    expect(quote.locator(".quote-who")).to_have_text(peer.username)
    expect(body_is(page, "the very first words")).to_have_count(0)  # 70 messages back: not loaded
    quote.click()
    target = body_is(page, "the very first words")
    expect(target).to_be_in_viewport()
    expect(target).to_have_class(re.compile(r"\bflash\b"))
    expect(quote.locator(".quote-text")).to_have_text("the very first words")  # now known


# --- edit ----------------------------------------------------------------------------


def test_edit_own_message_updates_both_browsers_with_an_edited_mark(pages: Pages) -> None:
    me, peer = register("edt"), register("edt", gateway_id="tgw2")
    cid = single_cid(me, peer)
    rest_send(peer, cid, "their words")
    my_page, peer_page = chat_open_in_browsers(pages, cid, me, peer)
    expect(message_menu(my_page, "their words").filter(has_text="Edit")).to_have_count(0)  # not mine
    my_page.keyboard.press("Escape")

    send(my_page, "teh plan is set")
    acked(my_page, "teh plan is set")
    expect(message(peer_page, "teh plan is set")).to_be_visible()
    message_menu(my_page, "teh plan is set").filter(has_text="Edit").click()
    expect(my_page.locator("#composer-context")).to_contain_text("Editing")
    expect(my_page.locator("#composer-input")).to_have_value("teh plan is set")
    my_page.fill("#composer-input", "the plan is set")
    my_page.press("#composer-input", "Enter")
    expect(my_page.locator("#composer-context")).to_be_hidden()
    expect(my_page.locator("#composer-input")).to_have_value("")

    for page in (my_page, peer_page):
        edited = message(page, "the plan is set")
        expect(edited.locator(".msg-edited")).to_have_text("edited")
        expect(message(page, "teh plan is set")).to_have_count(0)
        expect(page.locator("#message-list li.msg")).to_have_count(2)  # changed in place, not a new message
    assert stored(me, cid, "the plan is set")["edited_at"]

    # Escape leaves an edit without saving.
    message_menu(my_page, "the plan is set").filter(has_text="Edit").click()
    my_page.fill("#composer-input", "never saved")
    my_page.press("#composer-input", "Escape")
    expect(my_page.locator("#composer-input")).to_have_value("")
    expect(message(peer_page, "the plan is set")).to_be_visible()


# --- reactions -----------------------------------------------------------------------


def reaction(page: Page, text: str, emoji: str) -> Locator:
    return message(page, text).locator(f'.reaction[data-emoji="{emoji}"]')


def test_reactions_are_picked_counted_and_toggled_in_both_browsers(pages: Pages) -> None:
    me, peer = register("rct"), register("rct", gateway_id="tgw2")
    cid = single_cid(me, peer)
    rest_send(peer, cid, "we shipped it")
    my_page, peer_page = chat_open_in_browsers(pages, cid, me, peer)

    item = message(my_page, "we shipped it")
    item.get_by_role("button", name="Add a reaction").click()
    picker = my_page.locator("#menu").get_by_role("menuitem")
    expect(picker).to_have_count(6)
    picker.filter(has_text="👍").click()
    for page, mine in ((my_page, "true"), (peer_page, "false")):
        expect(reaction(page, "we shipped it", "👍").locator(".count")).to_have_text("1")
        expect(reaction(page, "we shipped it", "👍")).to_have_attribute("aria-pressed", mine)

    reaction(peer_page, "we shipped it", "👍").click()  # the peer adds theirs with the same emoji
    for page in (my_page, peer_page):
        expect(reaction(page, "we shipped it", "👍").locator(".count")).to_have_text("2")
    expect(reaction(peer_page, "we shipped it", "👍")).to_have_attribute("aria-pressed", "true")

    reaction(my_page, "we shipped it", "👍").click()  # mine off again
    for page in (my_page, peer_page):
        expect(reaction(page, "we shipped it", "👍").locator(".count")).to_have_text("1")
    expect(reaction(my_page, "we shipped it", "👍")).to_have_attribute("aria-pressed", "false")
    assert stored(me, cid, "we shipped it")["reactions"] == [{"emoji": "👍", "count": 1, "me": False}]

    # The keyboard reaches the picker: React in the menu, arrows along the row, Enter.
    message_menu(peer_page, "we shipped it").filter(has_text="React").click()
    peer_page.keyboard.press("ArrowRight")
    peer_page.keyboard.press("Enter")
    expect(reaction(my_page, "we shipped it", "❤️").locator(".count")).to_have_text("1")
    peer_page.reload()  # history brings the same state
    open_chat(peer_page, cid)
    expect(reaction(peer_page, "we shipped it", "❤️")).to_have_attribute("aria-pressed", "true")
    expect(reaction(peer_page, "we shipped it", "👍")).to_have_attribute("aria-pressed", "true")


# --- mentions ------------------------------------------------------------------------


def test_mention_is_picked_from_the_list_highlighted_and_badged_until_read(pages: Pages) -> None:
    me, bea, cal = register("mna"), register("mnb"), register("mnc")
    r = me.post("/api/groups", {"name": "Mentions", "member_ids": [bea.id, cal.id]})
    assert r.status_code == 201, r.text
    cid = f"g_{r.json()['id']}"
    rest_send(bea, cid, "hello all")
    my_page, bea_page = pages.new(), pages.new()
    sign_in_with_tokens(my_page, me)
    sign_in_with_tokens(bea_page, bea)
    open_chat(my_page, cid)
    expect(conversation_item(bea_page, cid)).to_be_visible()  # Bea has it in her list, not open

    my_page.fill("#composer-input", "")
    my_page.type("#composer-input", "ping @mn")
    options = my_page.locator("#mention-list [role=option]")
    expect(options).to_have_count(2)  # both others share the prefix; not me
    expect(options.first).to_have_attribute("aria-selected", "true")
    my_page.keyboard.press("ArrowDown")
    my_page.keyboard.press("ArrowUp")
    my_page.keyboard.press("Enter")  # picks, does not send
    expect(my_page.locator("#mention-list")).to_be_hidden()
    expect(my_page.locator("#composer-input")).to_have_value(f"ping @{bea.username} ")
    my_page.type("#composer-input", "please look")
    my_page.press("#composer-input", "Enter")
    body = f"ping @{bea.username} please look"
    acked(my_page, body)

    badge = conversation_item(bea_page, cid).locator(".mention-badge")
    expect(badge).to_be_visible()
    expect(message(my_page, body).locator(".mention")).to_have_text(f"@{bea.username}")
    assert stored(me, cid, body)["mentions"] == [bea.id]
    open_chat(bea_page, cid)
    expect(message(bea_page, body).locator(".mention.me")).to_have_text(f"@{bea.username}")
    expect(badge).to_have_count(0)  # read


def test_unread_mentions_from_the_list_show_the_badge_after_a_reload(pages: Pages) -> None:
    me, peer = register("mnl"), register("mnl")
    cid = single_cid(me, peer)
    r = peer.post("/api/messages", {"conversation_id": cid, "client_msg_id": "m-1",
                                    "body": f"@{me.username} are you there?", "mentions": [me.id]})
    assert r.status_code == 202, r.text
    page = pages.new()
    sign_in_with_tokens(page, me)
    expect(conversation_item(page, cid).locator(".mention-badge")).to_be_visible()
    rest_send(peer, cid, "no mention here")
    expect(conversation_item(page, cid).locator(".badge[data-unread]")).to_have_text("2")
    expect(conversation_item(page, cid).locator(".mention-badge")).to_have_count(1)


# --- live presence -------------------------------------------------------------------


def test_presence_dots_follow_the_peer_live(pages: Pages) -> None:
    me, peer = register("prs"), register("prs", gateway_id="tgw2")
    cid = single_cid(me, peer)
    rest_send(peer, cid, "are you online?")
    page = pages.new()
    sign_in_with_tokens(page, me)
    dot = conversation_item(page, cid).locator(".presence")
    expect(dot).not_to_have_class(re.compile(r"\bonline\b"))
    # The poll ran every 30 s; a push is seen in a few.
    sock = peer.ws("tgw2")
    try:
        expect(dot).to_have_class(re.compile(r"\bonline\b"), timeout=8_000)
        open_chat(page, cid)
        expect(page.locator("#conv-subtitle")).to_contain_text("online", timeout=8_000)
    finally:
        sock.close()
    expect(dot).not_to_have_class(re.compile(r"\bonline\b"), timeout=8_000)
    expect(page.locator("#conv-subtitle")).to_contain_text("offline")
