"""Attachments on the live stack: POST /api/uploads, image and file messages carrying an
upload_id, downloads for exactly the readers of such a message, and the cleanup of
uploads never sent."""

import io
import subprocess
import sys
import uuid
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.client import Socket, User, bulk_users, single_cid
from tests.stack import gateway_url

pytestmark = pytest.mark.usefixtures("stack")

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
LIMIT = 10 * MiB  # GOCHAT_MAX_UPLOAD_BYTES' default, which the test stack keeps


def png(width: int = 640, height: int = 480, color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (a decompression bomb's first bytes)."""
    data = bytearray(png(1, 1))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[ihdr + 17:ihdr + 21] = zlib.crc32(bytes(data[ihdr:ihdr + 17])).to_bytes(4, "big")
    return bytes(data)


def upload(user: User | None, data: bytes, name: str = "picture.png", content_type: str = "image/png",
           **kwargs: Any) -> requests.Response:
    headers = user.headers if user else {}
    return requests.post(f"{gateway_url()}/api/uploads", files={"file": (name, data, content_type)},
                         headers=headers, timeout=60, **kwargs)


def uploaded(user: User, data: bytes | None = None, **kwargs: Any) -> dict[str, Any]:
    r = upload(user, png() if data is None else data, **kwargs)
    assert r.status_code == 201, r.text
    return r.json()


def send_upload(sock: Socket, cid: str, up: dict[str, Any], kind: str = "image", body: str = "",
                **extra: Any) -> dict[str, Any]:
    """The ack (or error) of a message carrying the upload."""
    return sock.ack_for(sock.send_message(cid, body, kind=kind, extra={"upload_id": up["upload_id"], **extra}))


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def people(db_reader: Any, count: int) -> list[User]:
    """Users with tokens minted locally (no password hashing per user: that is not under test)."""
    with db_reader.access():
        return bulk_users(count, "up")


@pytest.fixture
def pair(db_reader: Any) -> tuple[User, User]:
    a, b = people(db_reader, 2)
    return a, b


# --- POST /api/uploads ------------------------------------------------------------------


def test_image_upload_answers_dimensions_and_a_thumbnail(pair: tuple[User, User]) -> None:
    a, _ = pair
    data = png(640, 480)
    up = uploaded(a, data, name="../../holiday\x00.png")
    assert set(up) == {"upload_id", "url", "name", "size", "content_type", "width", "height", "thumbnail_url"}
    assert (up["name"], up["size"], up["content_type"], up["width"], up["height"]) == (
        "holiday.png", len(data), "image/png", 640, 480)
    assert up["url"] == f"/api/uploads/{up['upload_id']}" and up["thumbnail_url"] == up["url"] + "/thumbnail"
    r = a.get(up["url"])
    assert (r.status_code, r.content, r.headers["Content-Type"]) == (200, data, "image/png")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith("inline")
    thumb = a.get(up["thumbnail_url"])
    assert (thumb.status_code, thumb.headers["Content-Type"]) == (200, "image/jpeg")
    assert image_size(thumb.content) == (320, 240)


def test_upload_over_the_limit_is_413(pair: tuple[User, User]) -> None:
    a, _ = pair
    # Declared too large: refused on Content-Length, before the body is read.
    r = upload(a, b"\0" * (LIMIT + MiB), name="big.bin", content_type="application/octet-stream")
    assert r.status_code == 413, r.text
    # Inside the multipart allowance but one byte over the file limit: refused after parsing.
    r = upload(a, b"\0" * (LIMIT + 1), name="big.bin", content_type="application/octet-stream")
    assert r.status_code == 413 and "over" in r.json()["detail"], r.text
    # Exactly the limit is fine.
    r = upload(a, b"\0" * LIMIT, name="exact.bin", content_type="application/octet-stream")
    assert (r.status_code, r.json()["size"]) == (201, LIMIT), r.text


def test_upload_streamed_without_a_length_is_cut_off_at_the_limit(pair: tuple[User, User]) -> None:
    a, _ = pair
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def chunks() -> Any:  # no Content-Length: sent with chunked transfer encoding
        yield head
        for _ in range(12):
            yield b"\0" * MiB
        yield f"\r\n--{boundary}--\r\n".encode()

    r = requests.post(f"{gateway_url()}/api/uploads", data=chunks(), timeout=60,
                      headers={**a.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413, r.text


def test_content_type_is_sniffed_not_trusted(pair: tuple[User, User]) -> None:
    a, b = pair
    lie = uploaded(a, b"<html><script>alert(1)</script></html>", name="cat.png", content_type="image/png")
    assert lie["content_type"] == "text/plain" and "width" not in lie and "thumbnail_url" not in lie
    r = a.get(lie["url"])
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Disposition"].startswith("attachment")  # never rendered inline
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in r.headers["Content-Security-Policy"]
    assert a.get(lie["url"] + "/thumbnail").status_code == 404
    pdf = uploaded(a, b"%PDF-1.4\n" + b"x" * 100, name="report.txt", content_type="text/plain")
    assert pdf["content_type"] == "application/pdf"
    sock = a.ws()
    cid = single_cid(a, b)
    refused = send_upload(sock, cid, lie, kind="image")
    assert (refused["type"], refused["code"]) == ("error", "bad_upload"), refused
    assert send_upload(sock, cid, lie, kind="file")["type"] == "ack"


def test_a_corrupt_image_is_refused(pair: tuple[User, User]) -> None:
    a, _ = pair
    r = upload(a, png()[:300])  # a PNG cut short
    assert r.status_code == 400 and "decoded" in r.json()["detail"], r.text
    r = upload(a, png_claiming(8000, 8000))  # 64 million pixels: over the decoder's guard
    assert r.status_code == 400 and "pixels" in r.json()["detail"], r.text


def test_empty_or_missing_file_is_400(pair: tuple[User, User]) -> None:
    a, _ = pair
    assert upload(a, b"").status_code == 400
    empty = requests.post(f"{gateway_url()}/api/uploads", data=b"", timeout=10,
                          headers={**a.headers, "Content-Type": "multipart/form-data; boundary=x"})
    assert empty.status_code == 400, empty.text
    no_file = requests.post(f"{gateway_url()}/api/uploads", files={"other": ("a.txt", b"hi")}, headers=a.headers,
                            timeout=10)
    assert no_file.status_code == 400 and "file" in no_file.json(), no_file.text
    assert a.post("/api/uploads", {"file": "x"}).status_code == 415  # JSON is not multipart


def test_unauthenticated_upload_and_download_are_401(pair: tuple[User, User]) -> None:
    a, _ = pair
    up = uploaded(a)
    assert upload(None, png()).status_code == 401
    assert requests.get(gateway_url() + up["url"], timeout=10).status_code == 401
    assert requests.get(gateway_url() + up["thumbnail_url"], timeout=10).status_code == 401


# --- messages carrying uploads ----------------------------------------------------------


def test_image_message_reaches_the_peer_with_the_upload_and_the_peer_downloads_it(db_reader: Any) -> None:
    a, b, stranger = people(db_reader, 3)
    data = png(1000, 500)
    up = uploaded(a, data)
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    assert b.get(up["url"]).status_code == 404  # not sent yet: the owner's only
    # The client's word on the file is replaced by the upload's facts.
    ack = send_upload(sa, cid, up, body="look", content_type="text/html", width=1, note="kept")
    assert ack["type"] == "ack", ack
    msg = sb.message(lambda m: m["message_id"] == ack["message_id"])
    assert (msg["kind"], msg["body"]) == ("image", "look")
    assert msg["extra"] == {**up, "note": "kept"}
    got = b.get(msg["extra"]["url"])  # right after the push: attached before it was sent
    assert (got.status_code, got.content) == (200, data)
    assert image_size(b.get(msg["extra"]["thumbnail_url"]).content) == (320, 160)
    for path in (up["url"], up["thumbnail_url"]):
        r = stranger.get(path)
        assert r.status_code == 404 and r.json() == {"detail": "No such upload."}, r.text
    assert sb.sync(cid)[-1]["extra"] == msg["extra"]  # history and sync carry it too


def test_rest_send_with_an_upload(pair: tuple[User, User]) -> None:
    a, b = pair
    up = uploaded(a, b"plain notes\n", name="notes.txt", content_type="text/plain")
    sb = b.ws()
    r = a.post("/api/messages", {"conversation_id": single_cid(a, b), "client_msg_id": uuid.uuid4().hex,
                                 "kind": "file", "body": "", "extra": {"upload_id": up["upload_id"]}})
    assert r.status_code == 202, r.text
    msg = sb.message()
    assert msg["extra"]["name"] == "notes.txt" and msg["extra"]["content_type"] == "text/plain"
    r = b.get(up["url"])
    assert r.status_code == 200 and r.content == b"plain notes\n"
    assert r.headers["Content-Disposition"] == 'attachment; filename="notes.txt"'


def test_someone_elses_or_an_unknown_upload_is_refused(pair: tuple[User, User]) -> None:
    a, b = pair
    theirs = uploaded(a)
    mine_text = uploaded(b, b"just text", name="t.txt", content_type="text/plain")
    sb = b.ws()
    cid = single_cid(a, b)
    for up, kind in ((theirs, "image"), (theirs, "file"), ({"upload_id": uuid.uuid4().hex}, "image"),
                     (mine_text, "image")):
        err = send_upload(sb, cid, up, kind=kind)
        assert (err["type"], err["code"]) == ("error", "bad_upload"), (up, kind, err)
        r = b.post("/api/messages", {"conversation_id": cid, "client_msg_id": uuid.uuid4().hex, "kind": kind,
                                     "extra": {"upload_id": up["upload_id"]}})
        assert (r.status_code, r.json().get("code")) == (400, "bad_upload"), r.text
    for extra, kind in (({"upload_id": "not-an-id"}, "image"), ({"upload_id": 5}, "file"),
                        ({"upload_id": mine_text["upload_id"]}, "text")):
        err = sb.ack_for(sb.send_message(cid, "x", kind=kind, extra=extra))
        assert (err["type"], err["code"]) == ("error", "invalid"), err
    assert b.get(theirs["url"]).status_code == 404  # the refused sends attached nothing
    assert sb.request({"type": "ping"}, "pong") == {"type": "pong"}


def test_group_members_download_and_nobody_else(db_reader: Any) -> None:
    owner, member, late, outsider = people(db_reader, 4)
    g = owner.post("/api/groups", {"name": "photos", "member_ids": [member.id]}).json()
    up = uploaded(owner)
    so, sm = owner.ws(), member.ws()
    ack = send_upload(so, g["conversation_id"], up)
    assert sm.message(lambda m: m["message_id"] == ack["message_id"])["extra"]["upload_id"] == up["upload_id"]
    assert member.get(up["url"]).status_code == 200
    assert outsider.get(up["url"]).status_code == 404
    assert owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [late.id]}).status_code == 200
    assert late.get(up["url"]).status_code == 404  # joined after it was sent: not in their history
    assert member.delete(f"/api/groups/{g['id']}/members/{member.id}").status_code == 204
    assert member.get(up["url"]).status_code == 404  # left
    assert owner.get(up["url"]).status_code == 200


def test_a_recalled_message_no_longer_grants_the_download(pair: tuple[User, User]) -> None:
    a, b = pair
    up = uploaded(a)
    sa = a.ws()
    ack = send_upload(sa, single_cid(a, b), up)
    assert b.get(up["url"]).status_code == 200
    assert a.post(f"/api/messages/{ack['message_id']}/recall").status_code == 204
    from tests.stack import wait_until

    wait_until(lambda: b.get(up["url"]).status_code == 404, 30, "the recall to reach the stored row", interval=0.2)
    assert a.get(up["url"]).status_code == 200  # the owner keeps their file


# --- cleanup ----------------------------------------------------------------------------


def test_cleanup_deletes_old_unsent_uploads_with_their_files(pair: tuple[User, User], db_reader: Any) -> None:
    from django.utils import timezone

    from uploads.models import Upload

    a, b = pair
    sent, unsent, fresh = uploaded(a), uploaded(a), uploaded(a)
    sa = a.ws()
    assert send_upload(sa, single_cid(a, b), sent)["type"] == "ack"
    ids = [uuid.UUID(hex=u["upload_id"]) for u in (sent, unsent, fresh)]
    with db_reader.access():
        Upload.objects.filter(pk__in=ids[:2]).update(created_at=timezone.now() - timedelta(hours=25))
        rows = {u.id: u for u in Upload.objects.filter(pk__in=ids)}
        files = {i: [Path(rows[i].file.path), Path(rows[i].thumbnail.path)] for i in ids}
    assert all(p.is_file() for paths in files.values() for p in paths)
    out = subprocess.run([sys.executable, "manage.py", "cleanup_uploads", "--older-than-hours", "24"], cwd=ROOT,
                         check=True, capture_output=True, text=True, timeout=60).stdout
    assert "removed 1 " in out, out
    with db_reader.access():
        assert set(Upload.objects.filter(pk__in=ids).values_list("id", flat=True)) == {ids[0], ids[2]}
    assert not any(p.exists() for p in files[ids[1]])
    assert all(p.is_file() for p in files[ids[0]] + files[ids[2]])
    assert a.get(unsent["url"]).status_code == 404
    assert b.get(sent["url"]).status_code == 200
