"""Which address is the client's, by the number of trusted proxies (gochat_project/client_address.py)."""

import pytest

from gochat_project.client_address import client_address, forwarded_for

PEER = "10.0.0.2"  # the proxy (or the client, with no proxy)


@pytest.mark.parametrize(("header", "trusted", "expected"), [
    (None, 0, PEER),
    ("203.0.113.9", 0, PEER),  # no proxy trusted: a client-written header changes nothing
    ("1.1.1.1, 203.0.113.9", 0, PEER),
    (None, 1, PEER),  # reached us without the proxy
    ("203.0.113.9", 1, "203.0.113.9"),  # nginx appended the address it saw
    ("6.6.6.6, 203.0.113.9", 1, "203.0.113.9"),  # the client's own entry on the left is not believed
    ("6.6.6.6, 203.0.113.9, 10.0.0.1", 2, "203.0.113.9"),  # CDN then nginx: the hop the outer proxy saw
    ("203.0.113.9", 2, "203.0.113.9"),  # fewer hops than proxies: the leftmost there is
    ("6.6.6.6,203.0.113.9", 1, "203.0.113.9"),
    ("2001:db8::1", 1, "2001:db8::1"),
    ("6.6.6.6, not-an-address", 1, PEER),  # a broken hop never becomes a throttle key
    (" , ", 1, PEER),
])
def test_client_address(header: str | None, trusted: int, expected: str) -> None:
    assert client_address(PEER, header, trusted) == expected


def test_repeated_headers_read_as_one_list() -> None:
    headers = [(b"host", b"x"), (b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.9")]
    assert forwarded_for(headers) == "6.6.6.6,203.0.113.9"
    assert client_address(PEER, forwarded_for(headers), 1) == "203.0.113.9"
    assert forwarded_for([(b"host", b"x")]) is None
