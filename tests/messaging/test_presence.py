"""Live presence end to end (docs/protocol.md, "Live presence"): `presence_subscribe`,
its answer, and the `presence` pushes on first connect, last disconnect and a crashed
gateway, across the stack's two gateways."""

import time
from typing import Any

import pytest

from tests.client import Socket, User, bulk_users, register
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.usefixtures("stack")

WITHIN_S = 1.0  # the bound for a connect or disconnect to reach a subscriber
# 100 connects or closes from 20 client threads on this 2-core machine take about a second
# themselves; each next change must come within this of the one before.
STORM_S = 3.0


def presence_of(user: User) -> Any:
    return lambda f: f["type"] == "presence" and f["user_id"] == user.id


def subscribe(sock: Socket, user_ids: list[Any]) -> list[dict[str, Any]]:
    """Send a presence_subscribe and collect its answer: one presence frame per distinct id."""
    sock.send({"type": "presence_subscribe", "user_ids": user_ids})
    return [sock.wait_for(lambda f, u=u: f["type"] == "presence" and f["user_id"] == u)
            for u in dict.fromkeys(user_ids)]


def no_presence_frames(sock: Socket, seconds: float) -> list[dict[str, Any]]:
    sock.quiet(seconds)
    return [f for f in sock.frames if f["type"] == "presence"]


def test_subscribe_answers_at_once_with_one_frame_per_id() -> None:
    watcher, online, offline = register("pw"), register("pon"), register("poff")
    online_sock = online.ws("tgw2")
    sock = watcher.ws()
    unknown = 10**12
    frames = subscribe(sock, [online.id, offline.id, unknown, online.id])  # a duplicate counts once
    assert frames == [
        {"type": "presence", "user_id": online.id, "online": True, "last_seen": None},
        {"type": "presence", "user_id": offline.id, "online": False, "last_seen": None},
        {"type": "presence", "user_id": unknown, "online": False, "last_seen": None},
    ]
    assert no_presence_frames(sock, 0.3) == [], "one frame per distinct id"
    online_sock.close()


def test_connect_and_disconnect_reach_a_subscriber_on_another_gateway_within_a_second() -> None:
    from gochat_project.infra import redis_client

    watcher, friend = register("pw"), register("pf")
    sock = watcher.ws("tgw1")
    assert subscribe(sock, [friend.id])[0]["online"] is False
    # Interest is registered by the watching gateway only: the change goes to it alone.
    watching = redis_client.client().hkeys(redis_client.watchers_key(friend.id))
    assert [redis_client.text(g) for g in watching] == ["tgw1"]

    friend_sock = friend.ws("tgw2")
    frame = sock.wait_for(presence_of(friend), timeout=WITHIN_S)
    assert frame == {"type": "presence", "user_id": friend.id, "online": True, "last_seen": None}

    closed_at = time.time() * 1000
    friend_sock.close()
    frame = sock.wait_for(presence_of(friend), timeout=WITHIN_S)
    assert frame["online"] is False
    assert closed_at - 1000 < frame["last_seen"] < closed_at + 1000
    detail = watcher.get(f"/api/users/{friend.id}").json()
    assert detail["online"] is False and detail["last_seen"] == frame["last_seen"]

    # Back online: the frame carries the stored last_seen.
    friend_sock = friend.ws("tgw1")
    again = sock.wait_for(presence_of(friend), timeout=WITHIN_S)
    assert again == {"type": "presence", "user_id": friend.id, "online": True, "last_seen": frame["last_seen"]}
    assert watcher.get(f"/api/users/{friend.id}").json()["online"] is True
    friend_sock.close()


def test_offline_only_when_the_last_device_goes() -> None:
    watcher, friend = register("pw"), register("pd")
    phone, laptop = friend.ws("tgw1"), friend.ws("tgw2")
    sock = watcher.ws("tgw1")
    assert subscribe(sock, [friend.id])[0]["online"] is True
    phone.close()
    assert no_presence_frames(sock, 1.5) == [], "another device is still connected"
    laptop.close()
    assert sock.wait_for(presence_of(friend), timeout=WITHIN_S)["online"] is False


def test_a_new_subscribe_replaces_the_set() -> None:
    watcher, dropped, kept = register("pw"), register("pdrop"), register("pkeep")
    sock = watcher.ws("tgw2")
    subscribe(sock, [dropped.id])
    subscribe(sock, [kept.id])
    dropped_sock = dropped.ws("tgw1")
    kept_sock = kept.ws("tgw1")
    assert sock.wait_for(presence_of(kept), timeout=WITHIN_S)["online"] is True
    assert [f for f in no_presence_frames(sock, 1.0) if f["user_id"] == dropped.id] == []
    subscribe(sock, [])  # an empty list unsubscribes
    sock.request({"type": "ping"}, "pong")  # frames are handled in order: the unsubscribe is done
    kept_sock.close()
    assert no_presence_frames(sock, 1.5) == []
    dropped_sock.close()


def test_a_closed_subscriber_leaves_nothing_behind_on_its_gateway() -> None:
    """A socket that closes drops its subscriptions: the gateway's next subscriber of the
    same user gets its own frames only (and the gateway stays up)."""
    first, second, friend = register("pw"), register("pw"), register("pc")
    s1 = first.ws("tgw1")
    subscribe(s1, [friend.id])
    s1.close()
    s2 = second.ws("tgw1")
    subscribe(s2, [friend.id])
    friend_sock = friend.ws("tgw2")
    assert s2.wait_for(presence_of(friend), WITHIN_S)["online"] is True
    friend_sock.close()
    assert s2.wait_for(presence_of(friend), WITHIN_S)["online"] is False


@pytest.mark.parametrize("user_ids", [
    "1", 5, None, {"a": 1}, [1, "2"], [1, 2.5], [True], [0], [-3], [2**53 + 1], [[1]],
])
def test_bad_user_ids_are_invalid(user_ids: Any) -> None:
    sock = register("pbad").ws()
    reply = sock.request({"type": "presence_subscribe", "user_ids": user_ids}, "presence")
    assert reply["type"] == "error" and reply["code"] == "invalid", reply


def test_a_frame_without_user_ids_is_invalid() -> None:
    sock = register("pbad").ws()
    reply = sock.request({"type": "presence_subscribe"}, "presence")
    assert reply["type"] == "error" and reply["code"] == "invalid"


def test_over_200_ids_is_invalid_and_keeps_the_previous_set() -> None:
    watcher, friend = register("pw"), register("p200")
    sock = watcher.ws()
    subscribe(sock, [friend.id])
    reply = sock.request({"type": "presence_subscribe", "user_ids": list(range(10**11, 10**11 + 201))}, "presence")
    assert reply["type"] == "error" and reply["code"] == "invalid" and "200" in reply["detail"]
    friend_sock = friend.ws("tgw2")
    assert sock.wait_for(presence_of(friend), timeout=WITHIN_S)["online"] is True
    friend_sock.close()
    answers = subscribe(sock, list(range(10**11, 10**11 + 200)))
    assert len(answers) == 200


def test_last_seen_of_a_user_never_connected_is_null() -> None:
    caller, other = register("pw"), register("pnever")
    detail = caller.get(f"/api/users/{other.id}").json()
    assert detail["online"] is False and detail["last_seen"] is None


def test_a_crashed_gateway_users_go_offline_within_the_ttl(stack: Stack, db_reader: Any) -> None:
    """kill -9 of the gateway holding the friend's only socket: no disconnect runs, the
    presence entry runs out after GOCHAT_PRESENCE_TTL_S (15 s in the tests) and a sweep
    announces it."""
    from django.conf import settings

    from accounts.models import User as UserModel

    watcher, friend = register("pw"), register("pcrash")
    friend.ws("tgw2")
    sock = watcher.ws("tgw1")
    assert subscribe(sock, [friend.id])[0]["online"] is True
    gateway = stack.gateways["tgw2"]
    killed_at = time.monotonic()
    gateway.kill()
    try:
        frame = sock.wait_for(presence_of(friend), timeout=settings.GOCHAT_PRESENCE_TTL_S + 5)
        assert frame["online"] is False
        assert time.monotonic() - killed_at <= settings.GOCHAT_PRESENCE_TTL_S + 3
        # last_seen is the last heartbeat or ping of the dead connection: before the kill.
        assert frame["last_seen"] <= time.time() * 1000 - (time.monotonic() - killed_at) * 1000 + 1000
        with db_reader.access():
            assert UserModel.objects.get(pk=friend.id).last_seen == frame["last_seen"]
    finally:
        gateway.start()
    wait_until(lambda: friend.ws("tgw2"), 10, "the restarted gateway").close()


def test_a_reconnect_storm_reaches_the_subscriber_once_per_user(db_reader: Any) -> None:
    """100 users connect at once on one gateway (as after a gateway restart) and leave at
    once: a subscriber on the other gateway gets exactly one online and one offline frame
    of each, all soon after the last of them. The changes travel in batches (one Redis
    read of the watchers and one record per watching gateway per batch); this holds that
    batching loses or repeats nobody."""
    from concurrent.futures import ThreadPoolExecutor

    with db_reader.access():
        friends = bulk_users(100, "pstorm", "tgw2")
    ids = {f.id for f in friends}
    sock = register("pw").ws("tgw1")
    assert {f["user_id"] for f in subscribe(sock, sorted(ids)) if not f["online"]} == ids

    def changes(online: bool) -> list[int]:
        seen: list[int] = []
        while len(seen) < len(ids):
            seen.append(sock.wait_for(lambda f: f["type"] == "presence" and f["online"] is online,
                                      timeout=STORM_S)["user_id"])
        return seen

    with ThreadPoolExecutor(20) as pool:
        socks = list(pool.map(lambda f: Socket.open(f.access, "tgw2", settle=False), friends))
        came = changes(True)
        assert sorted(came) == sorted(ids), "one online frame per user"
        list(pool.map(lambda s: s.close(), socks))
        went = changes(False)
    assert sorted(went) == sorted(ids), "one offline frame per user"
    assert no_presence_frames(sock, 0.5) == []


def test_last_seen_is_stored_in_one_batch_and_never_moves_backwards(db_reader: Any) -> None:
    """users_last_seen_record: a late batch from a slow gateway must not undo a newer time,
    and a user never seen before gets the batch's time."""
    from accounts import selectors as account_selectors
    from accounts import services as account_services

    with db_reader.access():
        a, b = bulk_users(2, "pls")
        account_services.users_last_seen_record(seen={a.id: 2_000, b.id: 1_000})
        account_services.users_last_seen_record(seen={a.id: 1_500, b.id: 3_000})  # a's is older: kept
        assert account_selectors.users_last_seen(user_ids=[a.id, b.id, 10**12]) == {a.id: 2_000, b.id: 3_000}


def test_a_user_whose_presence_ran_out_but_was_not_swept_yet_comes_online_again() -> None:
    """A crashed gateway's user reconnecting elsewhere after the TTL, before a sweep claimed
    them: subscribers reading the state saw them offline, so the refresh reports them as
    come online (a plain ZADD's reply would say 'not new' and nobody would hear)."""
    import asyncio

    from fanout import presence
    from gochat_project.infra import redis_client

    user_id = 10**12 + int(time.time() * 1000) % 10**6  # no real user: the stack's gateways never hold it

    async def reconnect() -> tuple[set[int], set[int]]:
        try:
            await redis_client.async_client().zadd(redis_client.online_key(), {str(user_id): time.time() - 1})
            came = await presence.presence_refresh([(user_id, "c-stale")], "tgw-test")
            again = await presence.presence_refresh([(user_id, "c-stale")], "tgw-test")
            assert await presence.presence_remove(user_id, "c-stale")
            return came, again
        finally:
            redis_client._async_clients.clear()

    came, again = asyncio.run(reconnect())
    assert came == {user_id} and again == set()
