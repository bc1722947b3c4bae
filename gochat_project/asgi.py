"""ASGI entry point: Django for HTTP, the GoChat gateway for /ws.
The Django app is built before any consumer is imported (Channels' rule)."""

import os
import sys

from gochat_project import malloc

# Before Django, Twisted's pool, asgiref's executor or librdkafka start any thread:
# caps the arenas and fixes the mmap/trim thresholds (see gochat_project/malloc.py).
malloc.tune()

from django.core.asgi import get_asgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gochat_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from gochat_project.client_address import TrustedProxies  # noqa: E402
from gochat_project.middleware import AsgiBodyLimit, daphne_skip_form_parsing  # noqa: E402
from messaging.gateway.consumer import ChatConsumer  # noqa: E402

daphne_skip_form_parsing()
if "daphne.server" in sys.modules and os.environ.get("GOCHAT_EAGER_WRITES", "1") != "0":
    from gochat_project import twisted_writes

    twisted_writes.install()

application = TrustedProxies(ProtocolTypeRouter({
    "http": AsgiBodyLimit(django_asgi_app),
    "websocket": URLRouter([path("ws", ChatConsumer.as_asgi())]),
}))

from gochat_project.metrics import start_metrics_server  # noqa: E402
from gochat_project.runtime import freeze_startup_objects  # noqa: E402

start_metrics_server()

freeze_startup_objects()
