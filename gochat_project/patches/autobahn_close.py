"""Let Daphne send close code 1012 (Service Restart, RFC 6455's registry), which
docs/protocol.md promises when a gateway drains on shutdown: autobahn's sendClose
admits only 1000 and 3000-4999 from applications, so that one frame is sent with its
lower-level call (messaging/gateway/runtime.py closes every socket with it)."""

import sys
from typing import Any


def install() -> bool:
    """Patch Daphne's WebSocketProtocol.serverClose once; False when Daphne is not loaded."""
    if "daphne.server" not in sys.modules:
        return False
    from daphne.ws_protocol import WebSocketProtocol

    from messaging.protocol import CLOSE_SERVICE_RESTART

    original = WebSocketProtocol.serverClose
    if getattr(original, "gochat_patched", False):
        return True

    def server_close(self: Any, code: int | None = None) -> None:
        if code == CLOSE_SERVICE_RESTART:
            self.sendCloseFrame(code=code)
        else:
            original(self, code)

    server_close.gochat_patched = True  # type: ignore[attr-defined]
    WebSocketProtocol.serverClose = server_close
    return True
