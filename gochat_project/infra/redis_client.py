"""Shared Redis clients (one pool per process) and the key formats of GoChat.
Every Redis key is built here so each format lives in one place.

One Redis, or a Redis Cluster (GOCHAT_REDIS_CLUSTER=1; GOCHAT_REDIS_URL then names
any node, the client discovers the rest). Keys that one script or transaction
touches together carry the same hash tag (`{b17}`: Redis hashes only what is
between the braces), so they share a slot, whichever of the two it is: the formats
do not depend on the setting.
"""

import zlib
from collections.abc import Mapping
from functools import cache
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient, RedisSerializer
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

SyncClient = redis.Redis | RedisCluster
AsyncClient = aioredis.Redis | AsyncRedisCluster


def cluster_enabled() -> bool:
    return bool(settings.GOCHAT_REDIS_CLUSTER)


@cache
def client() -> SyncClient:
    if cluster_enabled():
        # Connections per node; a node that dies is dropped and the slot map refreshed
        # on the next MOVED or connection error (redis-py's own retry).
        return RedisCluster.from_url(settings.GOCHAT_REDIS_URL, max_connections=100, socket_timeout=10,
                                     socket_connect_timeout=2, require_full_coverage=False)
    # Blocking pools wait for a free connection: the default pool raises
    # MaxConnectionsError at once when a burst of sockets connects (seen in the bench).
    pool = redis.BlockingConnectionPool.from_url(settings.GOCHAT_REDIS_URL, max_connections=100, timeout=10,
                                                 socket_timeout=10, health_check_interval=30)
    return redis.Redis(connection_pool=pool)


_async_clients: dict[int, AsyncClient] = {}


def async_client() -> AsyncClient:
    """One asyncio client per event loop (a pool is bound to the loop it was made on)."""
    import asyncio

    loop_id = id(asyncio.get_running_loop())
    c = _async_clients.get(loop_id)
    if c is None:
        if cluster_enabled():
            c = AsyncRedisCluster.from_url(settings.GOCHAT_REDIS_URL, max_connections=200, socket_timeout=10,
                                           socket_connect_timeout=2, require_full_coverage=False)
        else:
            pool = aioredis.BlockingConnectionPool.from_url(settings.GOCHAT_REDIS_URL, max_connections=200,
                                                            timeout=10, socket_timeout=10, health_check_interval=30)
            c = aioredis.Redis(connection_pool=pool)
        _async_clients[loop_id] = c
    return c


def mget(keys: list[str]) -> list[bytes | None]:
    """MGET of keys in any slots: a cluster splits it per slot (one round trip per node)."""
    if not keys:
        return []
    # redis-py types replies as `bytes | str` for either decode_responses; ours never
    # decode (client() leaves decode_responses False), so each value is bytes or None.
    c = client()
    if isinstance(c, RedisCluster):
        return cast(list[bytes | None], c.mget_nonatomic(keys))
    return cast(list[bytes | None], c.mget(keys))


def text(value: bytes | str) -> str:
    """A reply as str. redis-py types replies `bytes | str` (it depends on decode_responses);
    ours are always bytes, since the clients above leave decode_responses False."""
    return value if isinstance(value, str) else value.decode()


def pipeline_eval(pipe: Any, script: str, keys: list[str], args: list[object]) -> None:
    """Queue a Lua script on a pipeline. redis-py's cluster pipeline refuses `.eval()`,
    yet routes a plain EVAL command by its keys (all in one slot)."""
    pipe.execute_command("EVAL", script, len(keys), *keys, *args)


# --- key formats ----------------------------------------------------------------------

def key(*parts: object) -> str:
    prefix: str = settings.GOCHAT_REDIS_PREFIX
    return prefix + ":".join(str(p) for p in parts)


def bucket_of(conversation_id: str) -> int:
    """The slot group of a conversation: its counter, its idempotency records and its
    bucket's epoch marker share one hash tag. crc32, not hash(): the same in every process."""
    buckets: int = settings.GOCHAT_REDIS_SEQ_BUCKETS
    return zlib.crc32(conversation_id.encode()) % buckets


def bucket_tag(bucket: int) -> str:
    return f"{{b{bucket}}}"


def seq_key(conversation_id: str) -> str:
    return key(bucket_tag(bucket_of(conversation_id)), "seq", conversation_id)


def seq_epoch_key(bucket: int) -> str:
    """Present as long as the bucket's counters are: gone means the node holding the
    bucket lost them (restarted empty, or Redis flushed)."""
    return key(bucket_tag(bucket), "seq_epoch")


def idem_key(sender_id: int, client_msg_id: str, conversation_id: str) -> str:
    """In the conversation's bucket, so the assignment script touches one slot. A send is
    idempotent per (sender, conversation, client_msg_id), as MySQL's unique key is: the
    same client_msg_id in another conversation is another message."""
    return key(bucket_tag(bucket_of(conversation_id)), "idem", conversation_id, sender_id, client_msg_id)


def seq_pattern() -> str:
    """SCAN pattern of every counter (all buckets)."""
    return key("{b*}", "seq", "*")


def idem_pattern() -> str:
    return key("{b*}", "idem", "*")


def seq_epoch_pattern() -> str:
    return key("{b*}", "seq_epoch")


def recent_key(conversation_id: str) -> str:
    return key("recent", conversation_id)


def presence_key(user_id: int) -> str:
    return key("presence", user_id)


def online_key() -> str:
    return key("online")


def watchers_key(user_id: int) -> str:
    """The gateways with sockets subscribed to this user's presence (fanout/presence.py)."""
    return key("watchers", user_id)


def group_tag(group_id: int) -> str:
    return f"{{g{group_id}}}"


def group_info_key(group_id: int) -> str:
    """The cached member count; written in one transaction with the member hash."""
    return key(group_tag(group_id), "ginfo")


def group_members_key(group_id: int) -> str:
    return key(group_tag(group_id), "gmembers")


# --- Django's cache (DRF throttles) on the same client ---------------------------------

class _SharedClientCache(RedisCacheClient):
    """Django's RedisCacheClient builds a plain redis.Redis per server; this one hands
    out the shared client instead, so the cache follows GOCHAT_REDIS_CLUSTER."""

    _serializer: RedisSerializer  # set by Django's __init__; django-stubs leave it out

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        return client()

    def get_many(self, keys: Any) -> dict[Any, Any]:
        values = mget(list(keys))
        return {k: self._serializer.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def set_many(self, data: Mapping[Any, Any], timeout: Any) -> None:
        pipe = client().pipeline(transaction=False)  # MSET would span slots
        for k, v in data.items():
            pipe.set(k, self._serializer.dumps(v), ex=timeout)
        pipe.execute()


class SharedRedisCache(RedisCache):
    """CACHES backend: Django's RedisCache (throttle counters) on GoChat's Redis client."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClientCache
