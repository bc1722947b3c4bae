"""GoChat on a real three-node Redis Cluster (Debian's redis-server, cluster mode),
started by this module on its own ports: sequence assignment across many slots, a
node that restarts empty fences only its own slot groups until they are reseeded,
and the other Redis uses (presence, group cache, recent cache, Django's cache) run
without a cross-slot error. The full stack on a cluster runs in `make scale-out`."""

import asyncio
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import key_slot

from gochat_project.infra import redis_client
from gochat_project.ops import services
from tests.stack import _PORT_BASE, wait_until

PORTS = [_PORT_BASE + 61, _PORT_BASE + 62, _PORT_BASE + 63]
HOST = "127.0.0.1"


class Node:
    def __init__(self, port: int, root: Path) -> None:
        self.port, self.data = port, root / str(port)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(services.redis_cluster_node_command(HOST, self.port, self.data),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: services.port_open(f"{HOST}:{self.port}"), 10, f"redis on {self.port}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def wipe_data(self) -> None:
        """Everything but nodes-<port>.conf: the node comes back with its slots and no keys."""
        for path in self.data.iterdir():
            if not path.name.startswith("nodes-"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    for port in PORTS:
        if services.port_open(f"{HOST}:{port}"):
            pytest.fail(f"port {port} is taken (a stale run?)")
    nodes = [Node(p, tmp_path_factory.mktemp("redis-cluster")) for p in PORTS]
    for n in nodes:
        n.start()
    try:
        assert services.redis_cluster_create(HOST, PORTS)
        assert not services.redis_cluster_create(HOST, PORTS), "a second call finds the cluster made"
        yield nodes
    finally:
        for n in nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.kill()


@pytest.fixture
def on_cluster(cluster: list[Node], settings) -> Iterator[list[Node]]:
    """GoChat's clients pointed at the cluster for one test."""
    settings.GOCHAT_REDIS_CLUSTER = True
    settings.GOCHAT_REDIS_URL = f"redis://{HOST}:{PORTS[0]}/0"
    redis_client.client.cache_clear()
    redis_client._async_clients.clear()
    try:
        yield cluster
    finally:
        redis_client.client.cache_clear()
        redis_client._async_clients.clear()


def node_of_slot(slot: int) -> int:
    """The port of the node serving a slot."""
    for start, end, primary, *_ in redis.Redis(host=HOST, port=PORTS[0]).cluster("slots"):
        if start <= slot <= end:
            return int(primary[1])
    raise LookupError(slot)


@pytest.mark.django_db(transaction=True)
def test_seqs_across_many_slots_and_a_node_restarted_empty_fences_only_its_buckets(on_cluster: list[Node]) -> None:
    from accounts.models import User
    from messaging import sequences
    from messaging.models import Message

    sender = User.objects.create(username="clusterseq", password="!")
    cids = [f"s_{sender.id}_{100000 + i}" for i in range(300)]
    sequences.mark_counters_epoch()
    sequences.seed_counters(set(cids))
    assert len({node_of_slot(key_slot(redis_client.seq_key(c).encode())) for c in cids}) == 3, "every node serves some"
    acked: dict[str, list[int]] = defaultdict(list)
    stored = []
    for round_ in range(3):
        batch = [(c, sender.id, f"{c}-{round_}", round_ * 10**6 + i, 1_790_000_000_000 + round_)
                 for i, c in enumerate(cids)]
        for (cid, _, cmid, mid, ts), a in zip(batch, sequences.assign(batch), strict=True):
            assert a.first_time and a.message_id == mid
            acked[cid].append(a.seq)
            stored.append(Message(message_id=mid, conversation_id=cid, seq=a.seq, sender_id=sender.id,
                                  client_msg_id=cmid, ts=ts))
        again = sequences.assign(batch)  # the same batch consumed twice: the same seqs
        assert [a.seq for a in again] == [acked[b[0]][-1] for b in batch] and not any(a.first_time for a in again)
    assert all(seqs == [1, 2, 3] for seqs in acked.values())
    Message.objects.bulk_create(stored)  # persistence has drained: MySQL holds every acked seq

    victim = on_cluster[1]
    victim.kill()
    victim.wipe_data()
    victim.start()
    probe = redis.Redis(host=HOST, port=PORTS[0])
    wait_until(lambda: probe.cluster("info").get("cluster_state") == "ok", 20, "the cluster ok again")
    lost = {b for b in range(64) if node_of_slot(key_slot(redis_client.seq_epoch_key(b).encode())) == victim.port}
    assert lost, "the node held some buckets"

    batch = [(c, sender.id, f"{c}-3", 10**12 + i, 1_790_000_000_003) for i, c in enumerate(cids)]
    fenced = wait_until(lambda: _fenced(sequences, batch), 20, "the lost buckets fenced")
    assert fenced == lost, "only the empty node's buckets wait for persistence"
    assert not sequences.counters_epoch_exists(lost) and sequences.counters_epoch_exists(set(range(64)) - lost)
    # What logic does once persistence has drained (messaging/logic.py, _assign_in_redis).
    sequences.seed_counters({c for c in cids if redis_client.bucket_of(c) in fenced})
    sequences.mark_counters_epoch(fenced)
    assigned = sequences.assign(batch)
    assert {a.seq for a in assigned} == {4}, "counters reseeded from MySQL's MAX(seq): no gap, no reuse"
    assert sequences.reseed_all() == len(cids)  # reseed_sequences: raises no counter it finds ahead
    assert set(sequences.current_seqs(cids).values()) == {4}


def _fenced(sequences, batch) -> set[int] | None:  # type: ignore[no-untyped-def]
    try:
        sequences.assign(batch)
    except sequences.FenceRequired as exc:
        return exc.buckets
    except redis.RedisError:
        return None  # the client's slot map still names the node as down
    raise AssertionError("assigned without a fence although a node lost its counters")


@pytest.mark.django_db(transaction=True)
def test_presence_group_cache_recent_cache_and_django_cache_on_the_cluster(on_cluster: list[Node]) -> None:
    from django.core.cache import cache

    from accounts.models import User
    from fanout import presence
    from groups import selectors as group_selectors
    from groups.models import Group, GroupMember
    from messaging import sequences

    users = list(range(900_000, 900_200))

    async def connect_all() -> None:
        assert await presence.presence_refresh([(u, f"c{u}") for u in users], "gwA") == set(users)
        assert await presence.presence_remove(users[0], f"c{users[0]}")
        await presence.gateway_stats_write("gwA", 199, 199)
        # Live presence: interest per watched user (keys on many slots), the online states, the sweep.
        await presence.watchers_register(users[:100], "gwB")
        assert await presence.watchers_of(users[90:110]) == {u: ["gwB"] for u in users[90:100]}
        assert await presence.online_states(users[:3]) == set(users[1:3])
        assert await presence.presence_sweep() == {}  # nobody's presence ran out

    asyncio.run(connect_all())
    redis_client._async_clients.clear()
    gateways = presence.gateways_of_users(users)
    assert set(gateways) == set(users[1:]) and all(g == {"gwA"} for g in gateways.values())
    assert presence.online_filter(users) == users[1:]
    assert presence.gateways_to_reach(users[:5]) == {"gwA"}

    owner = User.objects.create(username="clusterowner", password="!")
    group = Group.objects.create(name="g", owner=owner, member_count=1)
    GroupMember.objects.create(group=group, user=owner, role="owner")
    routing = group_selectors.groups_for_routing(senders={group.id: {owner.id}, group.id + 1: set()})
    assert set(routing) == {group.id} and set(routing[group.id].members) == {owner.id}
    group_selectors.group_cache_invalidate(group.id)
    assert group_selectors.group_member_ids(group_id=group.id) == [owner.id]

    cids = [f"s_1_{i}" for i in range(50)]
    sequences.recent_add({c: [(1, b'{"seq": 1}')] for c in cids}, [(i, c, 1, 1) for i, c in enumerate(cids)])
    assert all(sequences.recent_after(c, 0, 10) == [b'{"seq": 1}'] for c in cids)

    cache.set_many({f"k{i}": i for i in range(50)}, 30)
    assert cache.get_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
    assert cache.get("k7") == 7
