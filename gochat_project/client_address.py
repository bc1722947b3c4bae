"""The client's address, decided once per connection for HTTP and WebSocket alike.

X-Forwarded-For is a list each proxy appends to: `client, proxy1, proxy2`. Only the
entries written by proxies you run can be believed; anything to their left came from
the client. With GOCHAT_TRUSTED_PROXIES = N, the client is the N-th entry from the
right (what the outermost of your proxies saw); with 0 the header is ignored and the
socket's peer is the client. The ASGI wrapper writes the answer into the scope, so
Django's REMOTE_ADDR, DRF's throttles (NUM_PROXIES 0: they take REMOTE_ADDR) and any
log line read the same address."""

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: int) -> str | None:
    """The address to treat as the client's (see the module docstring). A hop that is
    not an IP address (a misconfigured proxy) falls back to the peer."""
    if trusted_proxies <= 0 or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not hops:
        return peer
    hop = hops[-min(trusted_proxies, len(hops))]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return peer


def forwarded_for(headers: list[tuple[bytes, bytes]]) -> str | None:
    """X-Forwarded-For of an ASGI scope; several header lines read as one list, in order."""
    values = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
    return ",".join(values) if values else None


class TrustedProxies:
    """ASGI wrapper: scope["client"] becomes the client's address by the rule above."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        trusted = settings.GOCHAT_TRUSTED_PROXIES
        if trusted > 0 and scope["type"] in ("http", "websocket"):
            peer = (scope.get("client") or (None,))[0]
            address = client_address(peer, forwarded_for(scope.get("headers") or []), trusted)
            if address != peer:
                scope = {**scope, "client": (address, 0)}
        await self.app(scope, receive, send)
