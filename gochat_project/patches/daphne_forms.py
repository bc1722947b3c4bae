"""Under Daphne, stop Twisted from parsing request bodies as forms.

Twisted's Request parses every multipart/form-data POST into `request.args`, which
Daphne never reads: an upload is read whole into memory and copied again, and a body
Twisted cannot parse gets a bare 400 (no JSON, no log line) before GoChat sees it.
Its own switch for that, `parsePOSTFormSubmission`, cannot be passed through
Daphne's request factory, so it is set on each request after construction."""

import sys
from typing import Any


def install() -> bool:
    """Patch daphne.http_protocol.WebRequest.__init__ once; False when Daphne is not loaded."""
    module = sys.modules.get("daphne.http_protocol")
    if module is None:
        return False
    if getattr(module.WebRequest, "gochat_no_form_parsing", False):
        return True
    original = module.WebRequest.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    module.WebRequest.__init__ = __init__
    module.WebRequest.gochat_no_form_parsing = True
    return True
