"""Presence in Redis.

- `presence:{user}`: hash connection id -> "{gateway_id}|{expires_at}", the key's
  TTL refreshed by the gateway heartbeat and by `ping`. Entries carry their own
  expiry so a crashed gateway's connections stop counting after the TTL even
  while the user's other devices keep the hash alive.
- `online`: sorted set user id -> expires_at, so fan-out can filter a chunk of
  members with one ZMSCORE and a dead gateway's users fall out by themselves.
- `watchers:{user}`: hash gateway id -> expires_at of the gateways holding a socket
  that subscribed to the user's presence (`presence_subscribe`), refreshed by their
  heartbeat, so a dead gateway's interest ages out after the TTL.

Live presence: a user *comes online* when a refresh finds them absent from `online`
(or with a score that ran out) and *goes offline* when their last live connection is removed
(presence_remove) or when their score runs out without a refresh (a crashed gateway:
presence_sweep claims them). Whoever sees the change publishes it to the gateways in
the user's `watchers` hash (messaging/gateway/presence_changes.py).

On a Redis Cluster these live in different slots, so no script touches two of them
(presence_remove and presence_sweep take two steps).
"""

import time
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings

from gochat_project.infra import redis_client

# Remove one connection; 1 when no live one is left (entries of a crashed gateway that
# outlived their expiry do not count: ARGV[2] is now in epoch seconds).
_DISCONNECT = """
redis.call('HDEL', KEYS[1], ARGV[1])
for _, entry in ipairs(redis.call('HVALS', KEYS[1])) do
  local expires_at = tonumber(string.match(entry, '|(%d+)$') or '0')
  if expires_at > tonumber(ARGV[2]) then return 0 end
end
redis.call('DEL', KEYS[1])
return 1
"""

# Claim (remove and return, with their scores) up to ARGV[2] users of `online` whose
# score ran out before ARGV[1]: atomic, so with every gateway sweeping each is claimed once.
_SWEEP = """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #found, 2 do redis.call('ZREM', KEYS[1], found[i]) end
return found
"""
SWEEP_LIMIT = 1000  # users claimed per sweep call; a sweep repeats while it gets full pages


def _entry(gateway_id: str, expires_at: float) -> str:
    return f"{gateway_id}|{expires_at:.0f}"


def _entry_parse(raw: bytes | str) -> tuple[str, float]:
    """(gateway id, expires_at) of a connection's entry, as _entry wrote it."""
    gateway_id, _, expires_at = redis_client.text(raw).partition("|")
    return gateway_id, float(expires_at or 0)


async def presence_refresh(connections: Iterable[tuple[int, str]], gateway_id: str) -> set[int]:
    """Write or refresh (user_id, connection_id) pairs of one gateway in one round trip.
    Returns the users who came online with it: absent from `online` until now, or present
    with a score that ran out (a crashed gateway's user the sweep has not claimed yet; a
    subscriber reading the state then saw them offline, so it must hear they are back)."""
    ttl = settings.GOCHAT_PRESENCE_TTL_S
    now = time.time()
    expires_at = now + ttl
    pipe = redis_client.async_client().pipeline(transaction=False)
    users: dict[int, None] = {}
    for user_id, conn_id in connections:
        key = redis_client.presence_key(user_id)
        pipe.hset(key, conn_id, _entry(gateway_id, expires_at))
        pipe.expire(key, ttl)
        users[user_id] = None
    if not users:
        return set()
    # The previous score of each user, then the new one: two commands a user, one round trip.
    # Users whose gateways all died are left to presence_sweep, which records their last_seen.
    for user_id in users:
        pipe.zscore(redis_client.online_key(), str(user_id))
        pipe.zadd(redis_client.online_key(), {str(user_id): expires_at})
    replies = await pipe.execute()
    before = replies[-2 * len(users)::2]  # the ZSCOREs' replies, after the hash writes
    return {user_id for user_id, score in zip(users, before, strict=True) if score is None or score <= now}


async def presence_remove(user_id: int, conn_id: str) -> bool:
    """Remove one connection; True when the user went offline with it (no live
    connection left on any gateway)."""
    r = redis_client.async_client()
    if not await r.eval(_DISCONNECT, 1, redis_client.presence_key(user_id), conn_id, f"{time.time():.0f}"):
        return False
    await r.zrem(redis_client.online_key(), str(user_id))
    # A socket of the user's may have connected (on any gateway) between the two steps,
    # its refresh's ZADD landing before our ZREM: its hash entry is then there (written
    # before that ZADD), so put the user back. Nobody announces anything then: that
    # connect saw the user online (its ZADD added nobody), and so do subscribers.
    if await r.exists(redis_client.presence_key(user_id)):
        await r.zadd(redis_client.online_key(), {str(user_id): time.time() + settings.GOCHAT_PRESENCE_TTL_S})
        return False
    return True


async def presence_sweep() -> dict[int, int]:
    """Users whose presence ran out without a disconnect (their gateway crashed or hung):
    claimed from `online` at most once across all gateways; user id -> last_seen in ms
    (their last refresh: the score minus the TTL). A user whose hash still holds a live
    entry (a refresh racing the claim) is put back and not returned."""
    r = redis_client.async_client()
    ttl = settings.GOCHAT_PRESENCE_TTL_S
    gone: dict[int, int] = {}
    while True:
        found = await r.eval(_SWEEP, 1, redis_client.online_key(), f"{time.time():.3f}", SWEEP_LIMIT)
        claimed = {int(found[i]): float(found[i + 1]) for i in range(0, len(found), 2)}
        if not claimed:
            return gone
        live = await _live_expiry(list(claimed))
        back = {str(uid): expires_at for uid, expires_at in live.items()}
        if back:
            await r.zadd(redis_client.online_key(), back)
        gone.update({uid: int((score - ttl) * 1000) for uid, score in claimed.items() if uid not in live})
        if len(claimed) < SWEEP_LIMIT:
            return gone


async def _live_expiry(user_ids: list[int]) -> dict[int, float]:
    """user id -> the latest expiry of their live connections, for those that have one."""
    pipe = redis_client.async_client().pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hvals(redis_client.presence_key(user_id))
    now = time.time()
    live: dict[int, float] = {}
    for user_id, entries in zip(user_ids, await pipe.execute(), strict=True):
        expiries = [_entry_parse(e)[1] for e in entries]
        if expiries and max(expiries) > now:
            live[user_id] = max(expiries)
    return live


async def online_states(user_ids: list[int]) -> set[int]:
    """The subset of user_ids that is online, with one ZMSCORE (the gateway's async twin
    of online_filter)."""
    if not user_ids:
        return set()
    scores = await redis_client.async_client().zmscore(redis_client.online_key(), user_ids)  # type: ignore[arg-type]  # as in online_filter
    now = time.time()
    return {uid for uid, score in zip(user_ids, scores, strict=True) if score is not None and score > now}


async def watchers_register(user_ids: Iterable[int], gateway_id: str) -> None:
    """This gateway holds sockets subscribed to these users' presence: say so (or say it
    again, from the heartbeat) for the next TTL, in one round trip."""
    ttl = settings.GOCHAT_PRESENCE_TTL_S
    entry = f"{time.time() + ttl:.0f}"
    pipe = redis_client.async_client().pipeline(transaction=False)
    count = 0
    for user_id in user_ids:
        key = redis_client.watchers_key(user_id)
        pipe.hset(key, gateway_id, entry)
        pipe.expire(key, ttl)
        count += 1
    if count:
        await pipe.execute()


async def watchers_of(user_ids: list[int]) -> dict[int, list[str]]:
    """user id -> the gateways that registered interest in it and have not aged out
    (one round trip for the batch; users nobody watches are left out)."""
    if not user_ids:
        return {}
    pipe = redis_client.async_client().pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hgetall(redis_client.watchers_key(user_id))
    now = time.time()
    found: dict[int, list[str]] = {}
    for user_id, entries in zip(user_ids, await pipe.execute(), strict=True):
        gateways = [redis_client.text(gw) for gw, exp in entries.items() if float(exp) > now]
        if gateways:
            found[user_id] = gateways
    return found


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
            gateway_id, expires_at = _entry_parse(entry)
            if expires_at > now:
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
        gateway_id, expires_at = _entry_parse(v)
        if expires_at > now:
            live[redis_client.text(k)] = gateway_id
    return live
