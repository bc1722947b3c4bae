"""chaos/s3.py: the S3 semantics Tansu's s3:// engine relies on (its object_store client's
conditional writes and listings), over real HTTP."""

import http.client
import re
import threading
from collections.abc import Iterator

import pytest

from chaos.s3 import make_server


@pytest.fixture
def s3() -> Iterator[http.client.HTTPConnection]:
    server = make_server(0, "tansu")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    yield conn
    conn.close()
    server.shutdown()
    server.server_close()


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes = b"",
         **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def test_create_only_if_absent_and_update_only_if_unchanged(s3: http.client.HTTPConnection) -> None:
    status, headers, _ = call(s3, "PUT", "/tansu/meta.json", b"v1", If_None_Match="*")
    assert status == 200
    v1 = headers["ETag"]
    assert call(s3, "PUT", "/tansu/meta.json", b"other", If_None_Match="*")[0] == 412  # a racing create loses

    status, headers, _ = call(s3, "PUT", "/tansu/meta.json", b"v2", If_Match=v1)
    assert status == 200
    v2 = headers["ETag"]
    assert v2 != v1
    assert call(s3, "PUT", "/tansu/meta.json", b"stale", If_Match=v1)[0] == 412  # a stale update loses
    assert call(s3, "PUT", "/tansu/missing.json", b"x", If_Match=v1)[0] == 404  # the client maps it to 412

    status, headers, body = call(s3, "GET", "/tansu/meta.json")
    assert (status, headers["ETag"], body) == (200, v2, b"v2")
    assert "Last-Modified" in headers
    assert call(s3, "GET", "/tansu/meta.json", If_None_Match=v2)[0] == 304
    assert call(s3, "GET", "/tansu/meta.json", If_None_Match=v1)[0] == 200
    assert call(s3, "GET", "/tansu/nothing")[0] == 404
    assert call(s3, "GET", "/other-bucket/meta.json")[0] == 404


def listing(s3: http.client.HTTPConnection, query: str) -> tuple[list[str], list[str], str]:
    status, _, body = call(s3, "GET", f"/tansu?list-type=2&{query}")
    assert status == 200
    text = body.decode()
    token = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", text)
    return (re.findall(r"<Key>(.*?)</Key>", text), re.findall(r"<CommonPrefixes><Prefix>(.*?)</Prefix>", text),
            token.group(1) if token else "")


def test_listing_pages_through_a_prefix_in_order(s3: http.client.HTTPConnection) -> None:
    keys = [f"p/records/{i:020d}.batch" for i in range(7)]
    for key in reversed(keys):
        call(s3, "PUT", f"/tansu/{key}", b"batch")
    call(s3, "PUT", "/tansu/p/watermark.json", b"{}")
    call(s3, "PUT", "/tansu/q/records/x.batch", b"other prefix")
    call(s3, "DELETE", f"/tansu/{keys[3]}")

    seen, token = [], ""
    while True:
        page, _, token = listing(s3, "prefix=p/records/&max-keys=2" + (f"&continuation-token={token}"
                                                                       if token else ""))
        seen += page
        if not token:
            break
    assert seen == keys[:3] + keys[4:]

    page, prefixes, token = listing(s3, "prefix=p/&delimiter=/")
    assert (page, prefixes, token) == (["p/watermark.json"], ["p/records/"], "")
