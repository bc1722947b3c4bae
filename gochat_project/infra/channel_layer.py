"""The channel layer: channels-redis, made to wait out a Redis outage.

GoChat's layer carries only control messages (kick a banned user's sockets, a
group dissolved); messages travel through Kafka. Yet every socket waits on the
layer, and channels-redis lets a Redis error escape `receive()`: Channels'
dispatch loop then dies and the socket closes 1011. All sockets of a process
share one BRPOP, so during an outage they die one after another (a Redis restart
under load closed ~240 of 100 clients' sockets this way). Here `receive()` waits
for Redis to come back instead; control messages sent during the outage are gone
with Redis anyway.
"""

import asyncio
import logging
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

_OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_MAX_BACKOFF_S = 2.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    async def receive(self, channel: str) -> dict[str, Any]:
        # Safe to call again after an error: channels-redis releases its receive lock
        # and drops only the failed receiver's (empty) buffer before raising.
        backoff = 0.1
        while True:
            try:
                return await super().receive(channel)
            except _OUTAGE_ERRORS as exc:
                if backoff == 0.1:
                    log.warning("channel layer: Redis unavailable (%s); waiting for it", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
