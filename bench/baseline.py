"""The baseline: the chat a Django developer would write instead of GoChat.

A Channels consumer per socket joins a per-user group; a `send` is group_sent to
the recipient's group on channels-redis and acked at once. No Kafka, no
persistence, no sequence numbers. Same frames as GoChat so the same load
generator drives both. Run with DJANGO_SETTINGS_MODULE=bench.baseline, e.g.
`daphne bench.baseline:application`.
"""

import itertools
import os
import time
from typing import Any
from urllib.parse import parse_qs

SECRET_KEY = "baseline-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
USE_TZ = True
_REDIS = os.environ.get("BASELINE_REDIS_URL", "redis://127.0.0.1:6379/10")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Defaults a developer would keep (capacity 100), plus the one fix without which
        # idle consumers die on redis-py 8 (channels_redis#422).
        "CONFIG": {"hosts": [{"address": _REDIS, "socket_timeout": None, "max_connections": 1000}]},
    }
}

if os.environ.get("DJANGO_SETTINGS_MODULE") == "bench.baseline":
    import django

    django.setup()

    import orjson
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    _ids = itertools.count(1)

    class BaselineChat(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            query = parse_qs(self.scope["query_string"].decode())
            self.user_id = int(query.get("token", ["0"])[0])
            await self.channel_layer.group_add(f"u{self.user_id}", self.channel_name)
            await self.accept()

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(f"u{self.user_id}", self.channel_name)

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            frame = orjson.loads(text_data or b"{}")
            if frame.get("type") != "send":
                return
            a, b = (int(x) for x in frame["conversation_id"][2:].split("_"))
            peer = b if a == self.user_id else a
            message_id = str(next(_ids))
            message = {"message_id": message_id, "conversation_id": frame["conversation_id"],
                       "sender_id": self.user_id, "body": frame["body"], "client_msg_id": frame["client_msg_id"],
                       "ts": int(time.time() * 1000)}
            text = orjson.dumps({"type": "message", "message": message}).decode()
            await self.channel_layer.group_send(f"u{peer}", {"type": "chat.message", "text": text})
            await self.send(text_data=orjson.dumps({"type": "ack", "client_msg_id": frame["client_msg_id"],
                                                    "message_id": message_id,
                                                    "conversation_id": frame["conversation_id"]}).decode())

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    application = ProtocolTypeRouter({"websocket": URLRouter([path("ws", BaselineChat.as_asgi())])})
