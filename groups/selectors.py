"""Group reads. Logic routes through a Redis cache of member lists, rebuilt from
MySQL on a miss and dropped by every membership change (groups.services)."""

from dataclasses import dataclass

from django.conf import settings
from redis.typing import EncodableT, FieldT

from gochat_project.infra import redis_client
from groups.models import Group, GroupMember


@dataclass(frozen=True)
class MemberFlags:
    role: str
    muted: bool


@dataclass
class RoutingGroup:
    group_id: int
    member_count: int
    members: dict[int, MemberFlags]  # all members of a small group; only the asked senders of a large one

    @property
    def is_large(self) -> bool:
        return self.member_count > settings.GOCHAT_LARGE_GROUP_THRESHOLD


def group_membership(*, group_id: int, user_id: int) -> GroupMember | None:
    """The user's membership of a live (not dissolved) group, or None."""
    return (GroupMember.objects.select_related("group")
            .filter(group_id=group_id, user_id=user_id, group__dissolved=False).first())


def _encode(role: str, muted: bool) -> str:
    return f"{role}|{int(muted)}"


def _decode(value: bytes) -> MemberFlags:
    role, _, muted = value.decode().partition("|")
    return MemberFlags(role, muted == "1")


def _cache_fill(group_id: int) -> int | None:
    """Load a group's members into Redis; returns the member count, None if gone/dissolved."""
    group = Group.objects.filter(pk=group_id, dissolved=False).first()
    r = redis_client.client()
    info_key = redis_client.group_info_key(group_id)
    if group is None:
        r.set(info_key, "-1", ex=60)
        return None
    members_key = redis_client.group_members_key(group_id)
    pipe = r.pipeline(transaction=True)
    pipe.delete(members_key)
    rows = GroupMember.objects.filter(group_id=group_id).values_list("user_id", "role", "muted")
    count = 0
    chunk: dict[FieldT, EncodableT] = {}  # hset's Mapping is invariant in its key type
    for user_id, role, muted in rows.iterator(chunk_size=5000):
        chunk[str(user_id)] = _encode(role, muted)
        count += 1
        if len(chunk) >= 5000:
            pipe.hset(members_key, mapping=chunk)
            chunk = {}
    if chunk:
        pipe.hset(members_key, mapping=chunk)
    pipe.set(info_key, str(count))
    pipe.execute()
    return count


def group_cache_invalidate(group_id: int) -> None:
    redis_client.client().delete(redis_client.group_info_key(group_id), redis_client.group_members_key(group_id))


def groups_for_routing(*, senders: dict[int, set[int]]) -> dict[int, RoutingGroup]:
    """group id -> what logic needs to route a send: membership flags and size.

    One pipelined round trip for the cached case: every member of a small group
    (its recipients), only the senders of a large one (fan-out pages the rest).
    Dissolved or unknown groups are absent from the result.
    """
    if not senders:
        return {}
    r = redis_client.client()
    ids = list(senders)
    counts = redis_client.mget([redis_client.group_info_key(g) for g in ids])
    sizes: dict[int, int] = {}
    for gid, raw in zip(ids, counts, strict=True):
        count = int(raw) if raw is not None else _cache_fill(gid)
        if count is not None and count >= 0:
            sizes[gid] = count
    pipe = r.pipeline(transaction=False)
    order: list[tuple[int, list[int] | None]] = []
    out: dict[int, RoutingGroup] = {}
    for gid, count in sizes.items():
        key = redis_client.group_members_key(gid)
        if count > settings.GOCHAT_LARGE_GROUP_THRESHOLD and not senders[gid]:
            # A recall or edit asks for no member (the fan-out pages them); an HMGET of no
            # field is a Redis error, which failed logic's batch again on every retry.
            out[gid] = RoutingGroup(gid, count, {})
        elif count > settings.GOCHAT_LARGE_GROUP_THRESHOLD:
            asked = sorted(senders[gid])
            pipe.hmget(key, [str(u) for u in asked])
            order.append((gid, asked))
        else:
            pipe.hgetall(key)
            order.append((gid, None))
    for (gid, senders_asked), result in zip(order, pipe.execute(), strict=True):
        if senders_asked is None:
            members = {int(k): _decode(v) for k, v in result.items()}
        else:
            members = {u: _decode(v) for u, v in zip(senders_asked, result, strict=True) if v is not None}
        out[gid] = RoutingGroup(gid, sizes[gid], members)
    return out


def group_member_ids(*, group_id: int) -> list[int]:
    """Every member id of a group, sorted (from the Redis cache, filled on a miss)."""
    r = redis_client.client()
    if not r.exists(redis_client.group_info_key(group_id)):
        _cache_fill(group_id)
    return sorted(int(k) for k in r.hkeys(redis_client.group_members_key(group_id)))
