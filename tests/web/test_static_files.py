"""Static files under Daphne (WhiteNoise, from what `collectstatic` put in STATIC_ROOT):
the admin is styled, hashed files are cached for good and sent compressed, and the API
docs (Swagger UI at /api/docs, ReDoc at /api/redoc, from drf-spectacular-sidecar) work
with every other host out of reach. Real Chromium against the live stack."""

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, Response, Route, expect

from tests.stack import gateway_url
from tests.web import test_web_client
from tests.web.test_web_client import WAIT_MS

pytestmark = pytest.mark.e2e

browser = test_web_client.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
ONE_YEAR_S = 365 * 24 * 3600
HASHED_BASE_CSS = re.compile(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"')
ADMIN_HEADER_BG = "rgb(65, 118, 144)"  # --secondary (#417690) in the admin's base.css


@dataclass
class OfflinePage:
    """A page whose every request to a host other than this one is refused, and noted.

    Noted is what went for the network: what reached routing, and any answer from another
    host (were routing ever bypassed). A load the page's own Content-Security-Policy
    refuses never leaves the browser, so it is no attempt."""

    page: Page
    foreign: list[str] = field(default_factory=list)  # requests the browser tried to send elsewhere
    errors: list[str] = field(default_factory=list)  # uncaught errors in the page


def _is_foreign(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS


@pytest.fixture
def offline(browser: Browser) -> Iterator[OfflinePage]:
    context = browser.new_context(base_url=gateway_url("tgw1"), color_scheme="light",
                                  viewport={"width": 1200, "height": 760})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watched = OfflinePage(page)

    def only_this_host(route: Route) -> None:
        if _is_foreign(route.request.url):
            watched.foreign.append(route.request.url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def note_answer(response: Response) -> None:
        if _is_foreign(response.url):
            watched.foreign.append(response.url)

    context.route("**/*", only_this_host)
    context.on("response", note_answer)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    yield watched
    context.close()


def _hashed_base_css() -> str:
    page = requests.get(gateway_url() + "/admin/login/", timeout=10)
    assert page.status_code == 200
    found = HASHED_BASE_CSS.search(page.text)
    assert found, "the admin links its CSS by its hashed name (the collectstatic manifest)"
    return found.group(1)


# --- the admin -------------------------------------------------------------------


def test_admin_login_page_is_styled_by_the_admin_css(offline: OfflinePage) -> None:
    page = offline.page
    page.goto("/admin/login/")
    expect(page.locator("#header")).to_have_css("background-color", ADMIN_HEADER_BG)
    expect(page.locator("#container")).to_have_css("border-radius", "4px")  # login.css
    assert offline.foreign == [] and offline.errors == []


def test_hashed_static_file_is_cached_for_good_and_sent_gzipped() -> None:
    url = gateway_url() + _hashed_base_css()
    zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
    assert zipped.status_code == 200
    assert zipped.headers["Content-Type"].startswith("text/css")
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    directives = [d.strip() for d in zipped.headers["Cache-Control"].split(",")]
    assert "immutable" in directives and "public" in directives
    max_age = next(int(d.removeprefix("max-age=")) for d in directives if d.startswith("max-age="))
    assert max_age >= ONE_YEAR_S
    compressed = zipped.raw.read(decode_content=False)

    plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert len(compressed) < len(plain.content)
    assert gzip.decompress(compressed) == plain.content
    assert b"--header-bg" in plain.content
    assert requests.get(url, headers={"If-None-Match": plain.headers["ETag"]}, timeout=10).status_code == 304


def test_unhashed_static_file_is_cached_briefly_and_a_missing_one_is_404() -> None:
    plain_name = requests.get(gateway_url() + "/static/admin/css/base.css", timeout=10)
    assert plain_name.status_code == 200
    assert "immutable" not in plain_name.headers["Cache-Control"]
    assert "max-age=60" in plain_name.headers["Cache-Control"]
    assert requests.get(gateway_url() + "/static/admin/css/nope.css", timeout=10).status_code == 404
    assert requests.get(gateway_url() + "/static/../manage.py", timeout=10).status_code == 404


# --- the API docs, offline -------------------------------------------------------


def test_swagger_ui_renders_the_operations_without_other_hosts(offline: OfflinePage) -> None:
    page = offline.page
    page.goto("/api/docs")
    path = page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/auth/login$"))
    login = page.locator(".opblock", has=path)
    expect(login).to_be_visible()
    expect(login.locator(".opblock-summary-method")).to_have_text("POST")
    assert page.locator(".opblock").count() > 10
    assert offline.foreign == [], f"requests to other hosts: {offline.foreign}"
    assert offline.errors == []


def test_redoc_renders_the_api_without_other_hosts(offline: OfflinePage) -> None:
    page = offline.page
    page.goto("/api/redoc")
    expect(page.locator("h1", has_text="GoChat API")).to_be_visible()
    expect(page.get_by_text("/api/auth/login", exact=True).first).to_be_attached()
    assert offline.foreign == [], f"requests to other hosts: {offline.foreign}"
    assert offline.errors == []
