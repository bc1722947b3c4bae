"""ASGI entry point: Django for HTTP, the GoChat gateway for /ws.
The Django app is built before any consumer is imported (Channels' rule)."""

import os

from gochat_project.ops import malloc

# Before Django, Twisted's pool, asgiref's executor or librdkafka start any thread:
# caps the arenas and fixes the mmap/trim thresholds (see gochat_project/ops/malloc.py).
malloc.tune()

from django.core.asgi import get_asgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gochat_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from gochat_project.client_address import TrustedProxies  # noqa: E402
from gochat_project.middleware import AsgiBodyLimit  # noqa: E402
from gochat_project.patches import install_gateway  # noqa: E402
from messaging.gateway.consumer import ChatConsumer  # noqa: E402

install_gateway()

application = TrustedProxies(ProtocolTypeRouter({
    "http": AsgiBodyLimit(django_asgi_app),
    "websocket": URLRouter([path("ws", ChatConsumer.as_asgi())]),
}))

from gochat_project.ops.metrics import start_metrics_server  # noqa: E402
from gochat_project.ops.runtime import freeze_startup_objects  # noqa: E402

start_metrics_server()

freeze_startup_objects()
