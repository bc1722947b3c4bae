"""Presence in Redis.

- `presence:{user}`: hash connection id -> "{gateway_id}|{expires_at}", the key's
  TTL refreshed by the gateway heartbeat and by `ping`. Entries carry their own
  expiry so a crashed gateway's connections stop counting after the TTL even
  while the user's other devices keep the hash alive.
- `online`: sorted set user id -> expires_at, so fan-out can filter a chunk of
  members with one ZMSCORE and a dead gateway's users fall out by themselves.

On a Redis Cluster the two live in different slots, so no script touches both
(presence_remove takes two steps).
"""

import time
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings

from gochat_project.infra import redis_client

# Remove one connection; 1 when it was the user's last one.
_DISCONNECT = """
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def _entry(gateway_id: str, expires_at: float) -> str:
    return f"{gateway_id}|{expires_at:.0f}"


async def presence_refresh(connections: Iterable[tuple[int, str]], gateway_id: str) -> None:
    """Write or refresh (user_id, connection_id) pairs of one gateway in one round trip."""
    ttl = settings.GOCHAT_PRESENCE_TTL_S
    expires_at = time.time() + ttl
    pipe = redis_client.async_client().pipeline(transaction=False)
    online: dict[str, float] = {}
    for user_id, conn_id in connections:
        key = redis_client.presence_key(user_id)
        pipe.hset(key, conn_id, _entry(gateway_id, expires_at))
        pipe.expire(key, ttl)
        online[str(user_id)] = expires_at
    if online:
        pipe.zadd(redis_client.online_key(), online)
        # Users whose every gateway died long ago: keep the set small.
        pipe.zremrangebyscore(redis_client.online_key(), "-inf", time.time() - ttl)
        await pipe.execute()


async def presence_remove(user_id: int, conn_id: str) -> None:
    r = redis_client.async_client()
    if await r.eval(_DISCONNECT, 1, redis_client.presence_key(user_id), conn_id):
        await r.zrem(redis_client.online_key(), str(user_id))
        # A socket of the user's may have connected (on any gateway) between the two steps,
        # its refresh's ZADD landing before our ZREM: its hash entry is then there (written
        # before that ZADD), so put the user back.
        if await r.exists(redis_client.presence_key(user_id)):
            await r.zadd(redis_client.online_key(), {str(user_id): time.time() + settings.GOCHAT_PRESENCE_TTL_S})


def gateways_of_users(user_ids: Iterable[int]) -> dict[int, set[str]]:
    """user id -> gateways holding a live connection of that user (one round trip)."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    pipe = redis_client.client().pipeline(transaction=False)
    for user_id in ids:
        pipe.hvals(redis_client.presence_key(user_id))
    now = time.time()
    found: dict[int, set[str]] = defaultdict(set)
    for user_id, entries in zip(ids, pipe.execute(), strict=True):
        for entry in entries:
            gateway_id, _, expires_at = entry.decode().partition("|")
            if float(expires_at or 0) > now:
                found[user_id].add(gateway_id)
    return found


def gateways_to_reach(user_ids: list[int]) -> set[str]:
    """Every gateway that may hold a socket of these users: those their presence names,
    and every gateway that wrote its stats within the presence TTL (presence may have
    been lost with a Redis node; a control message to a gateway without them is a no-op)."""
    found = {gw for gws in gateways_of_users(user_ids).values() for gw in gws}
    recent = time.time() - settings.GOCHAT_PRESENCE_TTL_S
    return found | {gw for gw, stats in gateway_stats().items() if stats.get("ts", 0) > recent}


def online_filter(user_ids: list[int]) -> list[int]:
    """The subset of user_ids that is online, with one ZMSCORE."""
    if not user_ids:
        return []
    scores = redis_client.client().zmscore(redis_client.online_key(), user_ids)  # type: ignore[arg-type]  # redis-py's stub says list[str]; any encodable member works
    now = time.time()
    return [uid for uid, score in zip(user_ids, scores, strict=True) if score is not None and score > now]


async def gateway_stats_write(gateway_id: str, connections: int, users: int) -> None:
    """What `gochat_status` shows per gateway (written with every heartbeat)."""
    import orjson

    value = orjson.dumps({"connections": connections, "users": users, "ts": time.time()})
    await redis_client.async_client().hset(redis_client.key("gwstats"), gateway_id, value)


async def gateway_stats_present(gateway_id: str) -> bool:
    """Whether Redis still holds this gateway's stats entry: gone means Redis lost the
    gateway's presence too (both are written by the same heartbeat)."""
    return bool(await redis_client.async_client().hexists(redis_client.key("gwstats"), gateway_id))


def gateway_stats() -> dict[str, dict[str, float]]:
    import orjson

    raw = redis_client.client().hgetall(redis_client.key("gwstats"))
    return {redis_client.text(k): orjson.loads(v) for k, v in raw.items()}


def online_count() -> int:
    return int(redis_client.client().zcount(redis_client.online_key(), time.time(), "+inf"))


def new_connection_id() -> str:
    """Connection ids sort by creation time (fixed-width hex of ns), so the oldest is the smallest."""
    import uuid

    return f"{time.time_ns():016x}{uuid.uuid4().hex[:8]}"


async def live_connections(user_id: int) -> list[str]:
    """The user's unexpired connection ids on every gateway, oldest first."""
    return sorted(await connection_gateways(user_id))


async def connection_gateways(user_id: int) -> dict[str, str]:
    """The user's unexpired connections: connection id -> gateway id."""
    entries = await redis_client.async_client().hgetall(redis_client.presence_key(user_id))
    now = time.time()
    live = {}
    for k, v in entries.items():
        gateway_id, _, expires_at = redis_client.text(v).partition("|")
        if float(expires_at or 0) > now:
            live[redis_client.text(k)] = gateway_id
    return live
