"""Sequence numbers and idempotency records in Redis (ARCHITECTURE.md, Storage).

One Lua call per slot group returns, for each send, either the (message_id, seq,
ts, conversation) already recorded for its (sender, client_msg_id), or a fresh seq
from the conversation's counter. A batch consumed twice after a crash thus gets the
same seqs: no gap, no duplicate.

Conversations hash into GOCHAT_REDIS_SEQ_BUCKETS slot groups (redis_client.bucket_of).
A group's counters, the idempotency records of sends into its conversations, and its
`seq_epoch` marker share one hash tag, so each script call touches one slot and runs
on a Redis Cluster as on one Redis. A batch is split by group; the calls go in one
pipeline (one round trip per node).

A missing counter is never blindly re-seeded: a group's `seq_epoch` marker lives as
long as its counters do, so its absence means the node holding the group lost them
(restarted empty). Until everything already handed to persistence is stored, sends
into the lost groups wait (see logic.py); the other groups, and the other nodes of a
cluster, keep assigning.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from django.conf import settings
from django.db.models import Max

from gochat_project.infra import redis_client
from messaging.models import Message

IDEM_TTL_S = 7 * 24 * 3600

# KEYS: the group's epoch marker, then per send its counter and its idempotency record.
# ARGV: ttl, then per send message_id, ts, conversation_id.
_ASSIGN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'FENCE'} end
local ttl = tonumber(ARGV[1])
local out = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local sk, ik = KEYS[2 + i * 2], KEYS[3 + i * 2]
  local mid, ts, conv = ARGV[2 + i * 3], ARGV[3 + i * 3], ARGV[4 + i * 3]
  local prev = redis.call('GET', ik)
  if prev then
    out[#out + 1] = 'OLD:' .. prev
  elseif redis.call('EXISTS', sk) == 0 then
    out[#out + 1] = 'SEED'
  else
    local rec = mid .. ':' .. redis.call('INCR', sk) .. ':' .. ts .. ':' .. conv
    redis.call('SET', ik, rec, 'EX', ttl)
    out[#out + 1] = 'NEW:' .. rec
  end
end
return out
"""


@dataclass
class Assigned:
    message_id: int
    seq: int
    ts: int
    conversation_id: str
    first_time: bool


class FenceRequired(Exception):
    """Redis lost the counters of some slot groups: persistence must drain before re-seeding."""

    def __init__(self, buckets: set[int] | None = None) -> None:
        super().__init__(buckets)
        self.buckets = buckets if buckets is not None else set(range(settings.GOCHAT_REDIS_SEQ_BUCKETS))


class SeedRequired(Exception):
    def __init__(self, conversation_ids: set[str]) -> None:
        super().__init__(conversation_ids)
        self.conversation_ids = conversation_ids


Send = tuple[str, int, str, int, int]  # (conversation_id, sender_id, client_msg_id, new message_id, ts)


def by_bucket(sends: list[Send]) -> dict[int, list[int]]:
    """Slot group -> the indexes of its sends, in batch order."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, send in enumerate(sends):
        groups[redis_client.bucket_of(send[0])].append(i)
    return groups


def assign_call(bucket: int, sends: list[Send]) -> tuple[list[str], list[object]]:
    """KEYS and ARGV of one _ASSIGN call: sends all of one slot group."""
    keys = [redis_client.seq_epoch_key(bucket)]
    args: list[object] = [IDEM_TTL_S]
    for cid, sender, cmid, mid, ts in sends:
        keys += [redis_client.seq_key(cid), redis_client.idem_key(sender, cmid, cid)]
        args += [mid, ts, cid]
    return keys, args


def assign(sends: list[Send]) -> list[Assigned]:
    """sends: (conversation_id, sender_id, client_msg_id, new message_id, ts).

    Raises FenceRequired naming the slot groups that lost their counters, else
    SeedRequired naming conversations without a counter yet. Sends of the other
    groups are assigned meanwhile; a retry finds their idempotency records."""
    groups = by_bucket(sends)
    pipe = redis_client.client().pipeline(transaction=False)
    for bucket, indexes in groups.items():
        keys, args = assign_call(bucket, [sends[i] for i in indexes])
        redis_client.pipeline_eval(pipe, _ASSIGN, keys, args)
    results: list[str] = [""] * len(sends)
    fenced: set[int] = set()
    for (bucket, indexes), raw in zip(groups.items(), pipe.execute(), strict=True):
        answers = [r.decode() for r in raw]
        if answers == ["FENCE"]:
            fenced.add(bucket)
            continue
        for i, r in zip(indexes, answers, strict=True):
            results[i] = r
    if fenced:
        raise FenceRequired(fenced)
    missing = {send[0] for send, r in zip(sends, results, strict=True) if r == "SEED"}
    if missing:
        raise SeedRequired(missing)
    out = []
    for r in results:
        tag, _, rest = r.partition(":")
        mid, seq, ts, conv = rest.split(":", 3)
        out.append(Assigned(int(mid), int(seq), int(ts), conv, tag == "NEW"))
    return out


def seed_counters(conversation_ids: set[str]) -> None:
    """Seed missing counters from MySQL's MAX(seq) (only safe once persistence has drained)."""
    rows = dict(Message.objects.filter(conversation_id__in=conversation_ids)
                .values("conversation_id").annotate(m=Max("seq")).values_list("conversation_id", "m"))
    pipe = redis_client.client().pipeline(transaction=False)
    for cid in conversation_ids:
        pipe.set(redis_client.seq_key(cid), rows.get(cid) or 0, nx=True)
    pipe.execute()


def counters_epoch_exists(buckets: set[int] | None = None) -> bool:
    """Whether every given slot group (default: all) still has its epoch marker."""
    return not buckets_without_epoch(buckets)


def buckets_without_epoch(buckets: set[int] | None = None) -> set[int]:
    """The given slot groups (default: all) whose epoch marker is gone (one MGET per node)."""
    ordered = sorted(_all_buckets(buckets))
    values = redis_client.mget([redis_client.seq_epoch_key(b) for b in ordered])
    return {b for b, v in zip(ordered, values, strict=True) if v is None}


def mark_counters_epoch(buckets: set[int] | None = None) -> None:
    """Mark the given slot groups (default: all) as holding every counter they were given."""
    pipe = redis_client.client().pipeline(transaction=False)
    for b in sorted(_all_buckets(buckets)):
        pipe.set(redis_client.seq_epoch_key(b), "1", nx=True)
    pipe.execute()


def _all_buckets(buckets: set[int] | None) -> set[int]:
    return set(range(settings.GOCHAT_REDIS_SEQ_BUCKETS)) if buckets is None else buckets


# Only ever raise a counter: a live counter ahead of MySQL is still right.
_RAISE_TO = ("local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
             "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1")


def reseed_all() -> int:
    """Rebuild every counter from MySQL (reseed_sequences command). Returns how many."""
    rows = Message.objects.values("conversation_id").annotate(m=Max("seq")).values_list("conversation_id", "m")
    pipe = redis_client.client().pipeline(transaction=False)
    n = 0
    for cid, max_seq in rows.iterator():
        redis_client.pipeline_eval(pipe, _RAISE_TO, [redis_client.seq_key(cid)], [max_seq])
        n += 1
    pipe.execute()
    mark_counters_epoch()
    return n


def current_seqs(conversation_ids: list[str]) -> dict[str, int]:
    if not conversation_ids:
        return {}
    values = redis_client.mget([redis_client.seq_key(c) for c in conversation_ids])
    return {c: int(v) for c, v in zip(conversation_ids, values, strict=True) if v is not None}


# --- recent messages: answers `sync` before the persistence batch lands -------------

def recent_add(messages_json: dict[str, list[tuple[int, bytes]]],
               index: list[tuple[str, str, int, int]] = ()) -> None:  # type: ignore[assignment]
    """conversation_id -> [(seq, message JSON)], kept to the last N per conversation;
    and index: (message_id, conversation_id, seq, sender_id), so a recall can find a
    message before its row is stored."""
    if not messages_json:
        return
    keep = settings.GOCHAT_RECENT_CACHE_SIZE
    pipe = redis_client.client().pipeline(transaction=False)
    # Recall, edit and reply find a message here before its row is stored; later, in MySQL
    # (so the TTL need only outlive the persistence backlog, not the 3600 s edit window).
    index_ttl = settings.GOCHAT_RECALL_WINDOW_S + 3600
    for message_id, cid, seq, sender_id in index:
        pipe.set(redis_client.key("msgidx", message_id), f"{cid}|{seq}|{sender_id}", ex=index_ttl)
    for cid, items in messages_json.items():
        key = redis_client.recent_key(cid)
        pipe.zadd(key, {data: seq for seq, data in items})
        pipe.zremrangebyrank(key, 0, -keep - 1)
        pipe.expire(key, settings.GOCHAT_RECENT_CACHE_TTL_S)
    pipe.execute()


def recent_after(conversation_id: str, after_seq: int, limit: int) -> list[bytes]:
    return cast(list[bytes], redis_client.client().zrangebyscore(  # redis-py types replies for any decode_responses
        redis_client.recent_key(conversation_id), f"({after_seq}", "+inf", start=0, num=limit))


def recent_mark_recalled(conversation_id: str, seq: int, message_id: int) -> None:
    """Replace a cached message by its recalled form (kept at the same seq)."""
    _recent_update(conversation_id, seq, message_id, {"body": "", "extra": {}, "recalled": True})


def recent_mark_edited(conversation_id: str, seq: int, message_id: int, body: str, edited_at: int) -> None:
    """Replace a cached message by its edited form, unless it was recalled or took a later
    edit meanwhile (two devices editing at once: the later edit wins, as in MySQL)."""
    _recent_update(conversation_id, seq, message_id, {"body": body, "edited_at": edited_at},
                   stale=lambda cached: bool(cached.get("recalled")) or (cached.get("edited_at") or 0) > edited_at)


def recent_cached(conversation_id: str, seq: int, message_id: int) -> dict[str, Any] | None:
    """The cached message object at seq, if it is that message."""
    found = _recent_find(conversation_id, seq, message_id)
    return found[1] if found is not None else None


def _recent_find(conversation_id: str, seq: int, message_id: int) -> tuple[bytes, dict[str, Any]] | None:
    """(raw entry, message object) of that message in the recent cache at seq."""
    key = redis_client.recent_key(conversation_id)
    for raw in cast(list[bytes], redis_client.client().zrangebyscore(key, seq, seq)):
        cached: dict[str, Any] = orjson.loads(raw)
        if cached["message_id"] == str(message_id):
            return raw, cached
    return None


def _recent_update(conversation_id: str, seq: int, message_id: int, changes: dict[str, Any], *,
                   stale: Callable[[dict[str, Any]], bool] = lambda cached: False) -> None:
    found = _recent_find(conversation_id, seq, message_id)
    if found is None or stale(found[1]):
        return
    raw, cached = found
    cached.update(changes)
    pipe = redis_client.client().pipeline(transaction=True)
    pipe.zrem(redis_client.recent_key(conversation_id), raw)
    pipe.zadd(redis_client.recent_key(conversation_id), {orjson.dumps(cached): seq})
    pipe.execute()


def messages_locate_recent(message_ids: list[int]) -> dict[int, tuple[str, int, int]]:
    """message_id -> (conversation_id, seq, sender_id) from the Redis index of recently
    acked messages (one MGET; none for an empty list)."""
    values = redis_client.mget([redis_client.key("msgidx", m) for m in message_ids])
    out: dict[int, tuple[str, int, int]] = {}
    for mid, raw in zip(message_ids, values, strict=True):
        if raw is not None:
            cid, seq, sender = redis_client.text(raw).split("|")
            out[mid] = (cid, int(seq), int(sender))
    return out


def message_locate(message_id: int) -> tuple[str, int, int] | None:
    """(conversation_id, seq, sender_id) of a message, from the Redis index or MySQL."""
    found = messages_locate_recent([message_id]).get(message_id)
    if found is not None:
        return found
    row = Message.objects.filter(message_id=message_id).values_list("conversation_id", "seq", "sender_id").first()
    return (row[0], int(row[1]), int(row[2])) if row else None
