"""Sessions on open sockets in the web client (web/api.js and web/socket.js, docs/protocol.md): before the
access token expires the page refreshes it and moves its open socket onto the new one
with an `auth` frame, so nothing reconnects; if that fails, the server's 4401 at expiry
makes it refresh and reconnect. Real Chromium against the live stack.

The page signs in with an access token of a few seconds. Its renewal timer runs on
Playwright's clock, which the test moves forward: the renewal happens when the test
says, long before the server-side expiry, so nothing here races a timer."""

import time

import pytest
from playwright.sync_api import Page, expect
from rest_framework_simplejwt.tokens import AccessToken

from tests.client import User, access_token, register, single_cid
from tests.web import test_web_client
from tests.web.test_web_client import Pages, expect_online, message, open_chat, rest_send, send, sign_in_with_tokens

pytestmark = pytest.mark.e2e

browser = test_web_client.browser
pages = test_web_client.pages

# Every socket the page opens, the frames it received and how it closed. `dropAuth`
# swallows the page's `auth` frames, as a server that refused them would leave things.
WATCH_SOCKETS = """(() => {
  const Native = window.WebSocket;
  window.sockets = [];
  window.dropAuth = false;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const seen = { received: [], sentAuth: 0, closeCode: null };
      this.seen = seen;
      window.sockets.push(this);
      this.addEventListener("message", (ev) => { seen.received.push(JSON.parse(ev.data)); });
      this.addEventListener("close", (ev) => { seen.closeCode = ev.code; });
    }
    send(data) {
      if (JSON.parse(data).type === "auth") {
        this.seen.sentAuth += 1;
        if (window.dropAuth) return;
      }
      super.send(data);
    }
  };
})();"""

SOCKETS = """() => window.sockets.map((ws) => ({
  state: ws.readyState, closeCode: ws.seen.closeCode, sentAuth: ws.seen.sentAuth,
  authOk: ws.seen.received.filter((f) => f.type === "auth_ok"),
  errors: ws.seen.received.filter((f) => f.type === "error"),
}))"""


def signed_in_with_a_short_token(pages: Pages, user: User, lifetime_s: float) -> tuple[Page, int]:
    """The page online on a socket opened with an access token expiring in `lifetime_s`."""
    token, exp = access_token(user.id, expires_in=lifetime_s)
    page = pages.new()
    page.add_init_script(WATCH_SOCKETS)
    page.clock.install()
    sign_in_with_tokens(page, user, access=token)
    [sock] = page.evaluate(SOCKETS)
    assert sock["state"] == 1 and sock["sentAuth"] == 0, sock
    return page, exp


def renew_now(page: Page, lifetime_s: float) -> None:
    """Move the page's clock past the renewal point (a tenth of the lifetime before expiry)."""
    page.clock.fast_forward(int(lifetime_s * 1000))


def test_the_open_socket_is_renewed_in_place_and_outlives_its_first_token(pages: Pages) -> None:
    me, peer = register("renew"), register("renew", gateway_id="tgw2")
    cid = single_cid(me, peer)
    rest_send(peer, cid, "before the renewal")
    page, exp = signed_in_with_a_short_token(pages, me, 8)
    open_chat(page, cid)
    expect(message(page, "before the renewal")).to_be_visible()

    with page.expect_response(lambda r: r.url.endswith("/api/auth/refresh")) as refreshed:
        renew_now(page, 8)
    assert refreshed.value.status == 200
    new_access = refreshed.value.json()["access"]
    page.wait_for_function("() => window.sockets[0].seen.received.some((f) => f.type === 'auth_ok')")
    [sock] = page.evaluate(SOCKETS)
    assert sock["sentAuth"] == 1 and sock["errors"] == []
    assert sock["authOk"] == [{"type": "auth_ok", "expires_at": AccessToken(new_access)["exp"] * 1000}]

    # Across the first token's expiry, messages keep flowing both ways on the same socket.
    i = 0
    while time.time() < exp + 1.5:
        rest_send(peer, cid, f"across the expiry {i}")
        expect(message(page, f"across the expiry {i}")).to_be_visible()
        i += 1
    send(page, "still here")
    expect(message(page, "still here").locator(".msg-status")).to_have_text("Sent")
    [sock] = page.evaluate(SOCKETS)
    assert (sock["state"], sock["closeCode"]) == (1, None)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")


def test_a_socket_closed_with_4401_at_expiry_reconnects_on_the_renewed_token(pages: Pages) -> None:
    me, peer = register("renew"), register("renew", gateway_id="tgw2")
    cid = single_cid(me, peer)
    page, exp = signed_in_with_a_short_token(pages, me, 4)
    page.evaluate("() => { window.dropAuth = true; }")
    with page.expect_response(lambda r: r.url.endswith("/api/auth/refresh")):
        renew_now(page, 4)

    page.wait_for_function("() => window.sockets.length === 2 && window.sockets[1].readyState === 1",
                           timeout=test_web_client.WAIT_MS + 5_000)
    first, second = page.evaluate(SOCKETS)
    assert first["closeCode"] == 4401 and first["sentAuth"] == 1
    assert time.time() >= exp
    expect_online(page)
    rest_send(peer, cid, "after the reconnect")
    open_chat(page, cid)
    expect(message(page, "after the reconnect")).to_be_visible()
    assert second["closeCode"] is None
