"""Sequence numbers and idempotency records in Redis (ARCHITECTURE.md, Storage).

One Lua call per batch returns, for each send, either the (message_id, seq, ts,
conversation) already recorded for its (sender, client_msg_id), or a fresh seq
from the conversation's counter. A batch consumed twice after a crash thus gets
the same seqs: no gap, no duplicate.

A missing counter is never blindly re-seeded: the `seq_epoch` sentinel lives as
long as the counters do, so its absence means Redis lost them. Until everything
already handed to persistence is stored, the batch waits (see logic.py).
"""

from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db.models import Max

from gochat_project.infra import redis_client
from messaging.models import Message

IDEM_TTL_S = 7 * 24 * 3600

_ASSIGN = """
local prefix, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', prefix .. 'seq_epoch') == 0 then return {'FENCE'} end
local out = {}
for i = 0, n - 1 do
  local b = 4 + i * 5
  local conv, sender, cmid, mid, ts = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local ik = prefix .. 'idem:' .. sender .. ':' .. cmid
  local prev = redis.call('GET', ik)
  if prev then
    out[#out + 1] = 'OLD:' .. prev
  else
    local sk = prefix .. 'seq:' .. conv
    if redis.call('EXISTS', sk) == 0 then
      out[#out + 1] = 'SEED'
    else
      local rec = mid .. ':' .. redis.call('INCR', sk) .. ':' .. ts .. ':' .. conv
      redis.call('SET', ik, rec, 'EX', ttl)
      out[#out + 1] = 'NEW:' .. rec
    end
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
    """Redis lost its counters: persistence must drain before re-seeding."""


class SeedRequired(Exception):
    def __init__(self, conversation_ids: set[str]) -> None:
        super().__init__(conversation_ids)
        self.conversation_ids = conversation_ids


def assign(sends: list[tuple[str, int, str, int, int]]) -> list[Assigned]:
    """sends: (conversation_id, sender_id, client_msg_id, new message_id, ts)."""
    args: list[object] = [settings.GOCHAT_REDIS_PREFIX, IDEM_TTL_S, len(sends)]
    for send in sends:
        args.extend(send)
    raw = redis_client.client().eval(_ASSIGN, 0, *args)
    results = [r.decode() for r in raw]
    if results == ["FENCE"]:
        raise FenceRequired()
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


def counters_epoch_exists() -> bool:
    return bool(redis_client.client().exists(redis_client.key("seq_epoch")))


def mark_counters_epoch() -> None:
    redis_client.client().set(redis_client.key("seq_epoch"), "1", nx=True)


def reseed_all() -> int:
    """Rebuild every counter from MySQL (reseed_sequences command). Returns how many."""
    rows = Message.objects.values("conversation_id").annotate(m=Max("seq")).values_list("conversation_id", "m")
    pipe = redis_client.client().pipeline(transaction=False)
    n = 0
    for cid, max_seq in rows.iterator():
        # Only ever raise a counter: a live counter ahead of MySQL is still right.
        pipe.eval("local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
                  "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
                  1, redis_client.seq_key(cid), max_seq)
        n += 1
    pipe.execute()
    mark_counters_epoch()
    return n


def current_seqs(conversation_ids: list[str]) -> dict[str, int]:
    if not conversation_ids:
        return {}
    values = redis_client.client().mget([redis_client.seq_key(c) for c in conversation_ids])
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
    return redis_client.client().zrangebyscore(
        redis_client.recent_key(conversation_id), f"({after_seq}", "+inf", start=0, num=limit)


def recent_mark_recalled(conversation_id: str, seq: int, message_id: int) -> None:
    """Replace a cached message by its recalled form (kept at the same seq)."""
    r = redis_client.client()
    key = redis_client.recent_key(conversation_id)
    for raw in r.zrangebyscore(key, seq, seq):
        cached = orjson.loads(raw)
        if cached["message_id"] != str(message_id):
            continue
        cached.update(body="", extra={}, recalled=True)
        pipe = r.pipeline(transaction=True)
        pipe.zrem(key, raw)
        pipe.zadd(key, {orjson.dumps(cached): seq})
        pipe.execute()


def message_locate(message_id: int) -> tuple[str, int, int] | None:
    """(conversation_id, seq, sender_id) of a message, from the Redis index or MySQL."""
    raw = redis_client.client().get(redis_client.key("msgidx", message_id))
    if raw is not None:
        cid, seq, sender = raw.decode().split("|")
        return cid, int(seq), int(sender)
    row = Message.objects.filter(message_id=message_id).values_list("conversation_id", "seq", "sender_id").first()
    return (row[0], int(row[1]), int(row[2])) if row else None
