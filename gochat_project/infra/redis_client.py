"""Shared Redis clients (one pool per process) and the key formats of GoChat.
Every Redis key is built here so each format lives in one place."""

from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings


@cache
def client() -> redis.Redis:
    # Blocking pools wait for a free connection: the default pool raises
    # MaxConnectionsError at once when a burst of sockets connects (seen in the bench).
    pool = redis.BlockingConnectionPool.from_url(settings.GOCHAT_REDIS_URL, max_connections=100, timeout=10,
                                                 socket_timeout=10, health_check_interval=30)
    return redis.Redis(connection_pool=pool)


_async_clients: dict[int, aioredis.Redis] = {}


def async_client() -> aioredis.Redis:
    """One asyncio client per event loop (a pool is bound to the loop it was made on)."""
    import asyncio

    loop_id = id(asyncio.get_running_loop())
    c = _async_clients.get(loop_id)
    if c is None:
        pool = aioredis.BlockingConnectionPool.from_url(settings.GOCHAT_REDIS_URL, max_connections=200, timeout=10,
                                                        socket_timeout=10, health_check_interval=30)
        c = aioredis.Redis(connection_pool=pool)
        _async_clients[loop_id] = c
    return c


def key(*parts: object) -> str:
    return settings.GOCHAT_REDIS_PREFIX + ":".join(str(p) for p in parts)


def seq_key(conversation_id: str) -> str:
    return key("seq", conversation_id)


def idem_key(sender_id: int, client_msg_id: str) -> str:
    return key("idem", sender_id, client_msg_id)


def recent_key(conversation_id: str) -> str:
    return key("recent", conversation_id)


def presence_key(user_id: int) -> str:
    return key("presence", user_id)


def online_key() -> str:
    return key("online")


def group_members_key(group_id: int) -> str:
    return key("gmembers", group_id)
