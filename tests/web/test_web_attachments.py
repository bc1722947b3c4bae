"""Attachments in the web client (web/attachments.js), in real Chromium against the live
stack: an image is previewed, uploaded and sent, and the peer sees its thumbnail and
opens the full image; a file arrives as a download link."""

import io
import re
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from tests.client import User, bulk_users, single_cid
from tests.conftest import Db
from tests.web import test_web_client
from tests.web.test_web_client import (
    Pages,
    conversation_item,
    message,
    off_loop,
    sign_in_with_tokens,
    start_chat,
)

pytestmark = pytest.mark.e2e

# The browser and its per-test pages, shared with the client's other tests (pytest finds
# fixtures by the module attribute's name).
browser = test_web_client.browser
pages = test_web_client.pages


def chatting(pages: Pages, db_reader: Db) -> tuple[User, User, Page, Page]:
    """Alice and Bob signed in, each in a browser; Alice has their 1:1 open."""
    def make() -> list[User]:
        with db_reader.access():
            return bulk_users(2, "webatt")

    alice, bob = off_loop(make)
    a_page, b_page = pages.new(), pages.new()
    sign_in_with_tokens(a_page, alice)
    sign_in_with_tokens(b_page, bob)
    start_chat(a_page, bob.username)
    return alice, bob, a_page, b_page


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (240, 140, 40)).save(out, "PNG")
    return out.getvalue()


def natural_size(img: Locator) -> list[int]:
    """The decoded size of an <img> once its blob: source is set."""
    expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    return img.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")


def test_image_is_previewed_sent_and_shown_to_the_peer_as_a_thumbnail(pages: Pages, db_reader: Db) -> None:
    alice, bob, a_page, b_page = chatting(pages, db_reader)
    a_page.set_input_files("#attach-input", files=[{"name": "sunset.png", "mimeType": "image/png",
                                                     "buffer": png(800, 400)}])
    preview = a_page.locator("#attach-preview")
    expect(preview.locator(".attach-name")).to_have_text("sunset.png")
    assert natural_size(preview.locator("img.attach-thumb")) == [800, 400]  # the local file, before any upload
    a_page.fill("#composer-input", "Sunset from the balcony")
    a_page.press("#composer-input", "Enter")
    expect(preview).to_be_hidden()
    mine = message(a_page, "Sunset from the balcony")
    expect(mine.locator(".msg-status")).to_have_text("Sent")
    assert natural_size(mine.locator("img.att-thumb")) == [320, 160]  # the server's thumbnail

    item = conversation_item(b_page, single_cid(alice, bob))
    expect(item.locator(".conv-preview")).to_have_text("[image] Sunset from the balcony")
    item.click()
    theirs = message(b_page, "Sunset from the balcony")
    assert natural_size(theirs.locator("img.att-thumb")) == [320, 160]
    theirs.locator("button.att-image").click()
    viewer = b_page.locator("#image-viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#image-viewer-name")).to_have_text("sunset.png")
    assert natural_size(viewer.locator("#image-viewer-img")) == [800, 400]
    b_page.screenshot(path=str(_screenshot_path("viewer")))
    b_page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    a_page.screenshot(path=str(_screenshot_path("chat")))


def test_file_arrives_as_a_download_link(pages: Pages, db_reader: Db) -> None:
    alice, bob, a_page, b_page = chatting(pages, db_reader)
    notes = b"Shopping list\n- bread\n- <b>milk</b>\n"
    a_page.set_input_files("#attach-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": notes}])
    expect(a_page.locator("#attach-preview .attach-name")).to_have_text("notes.txt")
    a_page.press("#composer-input", "Enter")  # no caption: the file alone is sent
    expect(a_page.locator("#message-list a.att-file", has_text="notes.txt")).to_be_visible()

    conversation_item(b_page, single_cid(alice, bob)).click()
    link = b_page.locator("#message-list a.att-file", has_text="notes.txt")
    expect(link.locator(".att-file-size")).to_have_text(f"{len(notes)} B")
    with b_page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "notes.txt"
    with open(download.value.path(), "rb") as f:
        assert f.read() == notes


def _screenshot_path(name: str) -> Any:
    from tests.web.test_web_client import ROOT

    out = ROOT / ".run" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out / f"attachments-{name}.png"
