"""Faults under load: `python -m chaos [fault ...] [--rate R] [--soak-seconds S]` (`make chaos`).

Runs the whole system on its own infrastructure, so every part can be killed:
a MariaDB instance (port 13307, data in .run/chaos/mysql), a Redis without
persistence (16390), a three-node Apache Kafka cluster in KRaft mode (brokers on
19492-19494, their controllers on 20492-20494, data in .run/chaos/kafka, made afresh
every run; gochat_project/ops/kafka_broker.py) and GoChat's processes (two gateways on
18801/18802, logic, the persistence and fan-out workers). GoChat's topics have
replication factor 3 and min.insync.replicas 2, and its producers use acks=all.
CHAOS_PORT_OFFSET=N adds N to every port (and uses .run/chaos-N), so that two
checkouts on one machine can run it at once.

While WebSocket clients (chaos/load.py) send at a steady rate (--rate), each fault
is injected in turn and the failed part restarted, as a supervisor would:
  worker    kill -9 of the persistence worker
  logic     kill -9 of the logic consumer
  gateway   kill -9 of one of the two gateways (its clients reconnect to the other and sync)
  redis     kill -9 of Redis, restarted empty (sequence counters, presence, caches gone)
  mysql     MariaDB stopped for 10 s
  broker    kill -9 of the broker that leads the upstream topic, restarted 10 s later on
            its data; GoChat's processes are not restarted. Leaders move to the two
            survivors meanwhile; the phase checks that the node rejoins (every partition
            of GoChat's topics back to 3 in-sync replicas within 60 s).
With --scale-out GoChat runs two of every process kind (two logic consumers on 4
upstream partitions, two persistence workers and two fan-out workers on 2 partitions
each, the two gateways) on a three-node Redis Cluster (16390-16392, no persistence)
instead of one Redis, and each process fault kills one of the two: the survivor takes
its partitions over while it is down; the redis fault kills one cluster node, which
restarts empty (its slots' counters gone: their slot groups fence and reseed). Beside
the 1:1 pairs, group traffic runs across both gateways: --groups small groups and one
group above the large-group threshold (lowered to 50, chunks of 20), so the chunked
fan-out delivers its messages.
Then a soak on the same cluster and processes at --soak-rate (--soak-seconds): RSS and
CPU of every process (the three brokers included) and consumer lag.
After each phase: every acked message is stored exactly once with the seq and id it
was acked with, every conversation's seqs are 1..N, and every client that syncs holds
every acked message. Prints a table (the ack pause column: the longest time no client
got an ack), writes chaos-results/<time>.json, and exits 1 if anything was lost,
duplicated or did not recover.
"""

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# CHAOS_PORT_OFFSET shifts every port, so that two checkouts can run the harness at once.
PORT_OFFSET = int(os.environ.get("CHAOS_PORT_OFFSET", "0"))
CHAOS_DIR = ROOT / ".run" / (f"chaos-{PORT_OFFSET}" if PORT_OFFSET else "chaos")
MYSQL_PORT, REDIS_PORT, KAFKA_PORT = (p + PORT_OFFSET for p in (13307, 16390, 19492))
KAFKA_NODES = 3  # on KAFKA_PORT and the ports after it; controllers 1,000 ports above
# Read before Django starts: the partition counts are settings.
SCALE_OUT = "--scale-out" in sys.argv
CHAOS_ENV = {
    "GOCHAT_DATABASE_URL": f"mysql://root@127.0.0.1:{MYSQL_PORT}/gochat_chaos",
    "GOCHAT_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "GOCHAT_KAFKA_BOOTSTRAP": ",".join(f"127.0.0.1:{KAFKA_PORT + i}" for i in range(KAFKA_NODES)),
    "GOCHAT_KAFKA_EMBEDDED": "0",  # the harness runs the brokers itself
    "GOCHAT_KAFKA_CREATE_TOPICS": "1",
    "GOCHAT_KAFKA_REPLICATION_FACTOR": "-1",  # the cluster's default.replication.factor: 3
    "GOCHAT_TOPIC_PREFIX": "gochat_chaos",
    "GOCHAT_GATEWAY_ID": "tgw1",
    "GOCHAT_GATEWAY_IDS": "tgw1,tgw2",
    "GOCHAT_TEST_PORT_BASE": str(18800 + PORT_OFFSET),
    "GOCHAT_ACCESS_TOKEN_MINUTES": "1440",
    "GOCHAT_DAPHNE_VERBOSITY": "0",
    "DJANGO_DEBUG": "0",
    "DJANGO_SETTINGS_MODULE": "gochat_project.settings",
}
REDIS_NODES = 3 if SCALE_OUT else 1  # a Redis Cluster on REDIS_PORT and the ports after it
LARGE_GROUP_THRESHOLD, LARGE_GROUP_MEMBERS = 50, 120
if SCALE_OUT:
    CHAOS_ENV.update({"GOCHAT_UPSTREAM_PARTITIONS": "4", "GOCHAT_PERSIST_PARTITIONS": "2",
                      "GOCHAT_FANOUT_PARTITIONS": "2", "GOCHAT_REDIS_CLUSTER": "1",
                      "GOCHAT_LARGE_GROUP_THRESHOLD": str(LARGE_GROUP_THRESHOLD), "GOCHAT_FANOUT_CHUNK": "20"})
os.environ.update(CHAOS_ENV)
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.db import close_old_connections  # noqa: E402

from bench.procfs import tree_cpu_s, tree_rss_kib  # noqa: E402
from chaos.load import Load  # noqa: E402
from gochat_project.ops import kafka_broker, services  # noqa: E402
from tests.stack import _PORT_BASE, VENV_BIN, Process, Stack, wait_until, ws_url  # noqa: E402

FAULTS = ["worker", "logic", "gateway", "redis", "mysql", "broker"]
REPLICAS = 3  # every partition of GoChat's topics: replication factor and, when healthy, ISR size
BROKER_DOWN_S = 10.0
REJOIN_TIMEOUT_S = 60.0
BROKER_ACK_PAUSE_LIMIT_S = 10.0


class ScaledStack(Stack):
    """Two of every process kind: the test stack plus a second logic consumer and a second
    persistence and fan-out worker, each with a metrics port of its own."""

    def __init__(self) -> None:
        from gochat_project.infra import kafka

        super().__init__()
        self.logic2 = Process("logic-2", [sys.executable, "manage.py", "run_logic"],
                              ready=lambda p: "logic consuming" in p.log_since_start(),
                              env={"GOCHAT_METRICS_PORT": str(_PORT_BASE + 21)})
        self.persist_worker2 = self._worker(kafka.persist_topic(), "persist2", _PORT_BASE + 22)
        self.fanout_worker2 = self._worker(kafka.fanout_topic(), "fanout2", _PORT_BASE + 23)

    @staticmethod
    def _worker(queue: str, name: str, metrics_port: int) -> Process:
        return Process(f"worker-{name}", [str(VENV_BIN / "celery"), "-A", "gochat_project", "worker", "--pool=solo",
                                          "--prefetch-multiplier=1", "-Q", queue, "-n", f"{name}@test", "-l", "INFO"],
                       ready=lambda p: "ready." in p.log_since_start(), env={"GOCHAT_METRICS_PORT": str(metrics_port)})

    def all(self) -> list[Process]:
        return [*super().all(), self.logic2, self.persist_worker2, self.fanout_worker2]

    def work(self) -> dict[str, float]:
        """What each logic consumer accepted and each persistence worker stored so far,
        from their metrics: with both of a kind above 0, both held partitions."""
        import requests

        def counter(port: int, name: str) -> float:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))

        accepted, persisted = "gochat_messages_accepted_total", "gochat_messages_persisted_total"
        return {"logic": counter(_PORT_BASE + 11, accepted), "logic-2": counter(_PORT_BASE + 21, accepted),
                "persist": counter(_PORT_BASE + 12, persisted), "persist2": counter(_PORT_BASE + 22, persisted)}


def port_ready(port: int) -> Callable[[Process], bool]:
    return lambda _: services.port_open(f"127.0.0.1:{port}")


def admin_client() -> Any:
    from confluent_kafka.admin import AdminClient

    from gochat_project.infra import kafka

    return AdminClient(kafka.common_config())


class Infra:
    """What GoChat stands on, as processes this harness may kill."""

    def __init__(self) -> None:
        mysql_dir = CHAOS_DIR / "mysql"
        user = ["--user=root"] if os.geteuid() == 0 else []
        self.mysql_dir = mysql_dir
        self.mysql = Process("mariadbd", ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={mysql_dir}",
                                          f"--port={MYSQL_PORT}", f"--socket={CHAOS_DIR / 'mysql.sock'}",
                                          "--bind-address=127.0.0.1", "--max-connections=500",
                                          "--innodb-buffer-pool-size=256M", *user],
                             ready=port_ready(MYSQL_PORT))
        self.redis_dir = CHAOS_DIR / "redis"
        if REDIS_NODES == 1:
            self.redis_nodes = [Process("redis", ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                                                  "--save", "", "--appendonly", "no"], ready=port_ready(REDIS_PORT))]
        else:  # no persistence: a node killed comes back empty, with its slots (nodes-<port>.conf)
            self.redis_nodes = [Process(f"redis-{port}", [*services.redis_cluster_node_command(
                "127.0.0.1", port, self.redis_dir), "--appendonly", "no"], ready=port_ready(port))
                for port in self.redis_ports()]
        self.redis = self.redis_nodes[len(self.redis_nodes) // 2]  # the one the redis fault kills
        # One process per Kafka node (broker and controller), so that each can be killed alone.
        self.kafka_dir = CHAOS_DIR / "kafka"
        self.nodes = kafka_broker.cluster(KAFKA_PORT, KAFKA_NODES, self.kafka_dir)
        assert kafka_broker.bootstrap(self.nodes) == CHAOS_ENV["GOCHAT_KAFKA_BOOTSTRAP"]
        self.brokers = {n.node_id: Process(f"kafka-{n.node_id}", kafka_broker.command(n), ready=port_ready(n.port))
                        for n in self.nodes}

    def all(self) -> list[Process]:
        return [self.mysql, *self.redis_nodes, *self.brokers.values()]

    @staticmethod
    def redis_ports() -> list[int]:
        return [REDIS_PORT + i for i in range(REDIS_NODES)]

    def start(self) -> None:
        ports = (MYSQL_PORT, *self.redis_ports(), *(n.port for n in self.nodes),
                 *(n.controller_port for n in self.nodes))
        for port in ports:
            if services.port_open(f"127.0.0.1:{port}"):
                raise RuntimeError(f"port {port} is taken (a stale chaos run?); the harness needs it free")
        shutil.rmtree(self.mysql_dir, ignore_errors=True)
        shutil.rmtree(self.kafka_dir, ignore_errors=True)  # a fresh cluster every run
        shutil.rmtree(self.redis_dir, ignore_errors=True)
        self.redis_dir.mkdir(parents=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.mysql_dir}",
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        *(["--user=root"] if os.geteuid() == 0 else [])],
                       check=True, capture_output=True)
        kafka_broker.prepare(self.nodes)
        self.mysql.start(timeout=60)
        for p in self.redis_nodes:
            p.start(timeout=60)
        if REDIS_NODES > 1:
            services.redis_cluster_create("127.0.0.1", self.redis_ports())
        # All nodes at once: a node opens its client port only once the controllers have a quorum.
        for p in self.brokers.values():
            p.launch()
        for p in self.brokers.values():
            p.wait_ready(120)
        kafka_broker.wait_registered(self.nodes, 60)

    def stop(self) -> None:
        brokers = [p for p in self.brokers.values() if p.running()]
        for p in brokers:  # together: a node stopping alone waits for the others to take its leaders
            p.signal_stop()
        for p in brokers:
            p.wait_stopped(20)
        for p in self.redis_nodes:
            p.stop()
        self.mysql.stop(timeout=30)

    def broker_of(self, node_id: int) -> Process:
        return self.brokers[node_id]


def create_topics() -> dict[str, int]:
    """GoChat's topics as `services up` makes them (replication factor -1: the brokers'
    default, 3 on this cluster, min.insync.replicas 2); fails unless every partition
    then has 3 replicas."""
    from gochat_project.infra import kafka

    services.ensure_topics()
    admin = admin_client()
    wanted = kafka.all_topics()
    meta = wait_until(lambda: _all_topics_meta(admin, wanted), 30, "GoChat's topics to have leaders", interval=0.2)
    short = [f"{t}[{p.id}] has {len(p.replicas)} replicas" for t, tm in meta.items() for p in tm.partitions.values()
             if len(p.replicas) != REPLICAS]
    if short:
        raise RuntimeError("GoChat's topics must have replication factor 3: " + "; ".join(short))
    return {t: len(tm.partitions) for t, tm in meta.items()}


def _all_topics_meta(admin: Any, topics: dict[str, int]) -> dict[str, Any] | None:
    try:
        meta = admin.list_topics(timeout=5).topics
    except Exception:
        return None
    if any(t not in meta or meta[t].error is not None or any(p.leader < 0 for p in meta[t].partitions.values())
           for t in topics):
        return None
    return {t: meta[t] for t in topics}


def under_replicated(admin: Any) -> list[str]:
    """Partitions of GoChat's topics with fewer than 3 in-sync replicas (or no leader)."""
    from gochat_project.infra import kafka

    meta = admin.list_topics(timeout=5).topics
    bad = []
    for t in kafka.all_topics():
        tm = meta.get(t)
        if tm is None or tm.error is not None:
            bad.append(t)
            continue
        bad += [f"{t}[{p.id}]" for p in tm.partitions.values() if p.leader < 0 or len(p.isrs) < REPLICAS]
    return bad


def partition_leader(admin: Any, topic_name: str, partition: int = 0) -> int:
    return admin.list_topics(topic_name, timeout=5).topics[topic_name].partitions[partition].leader


@dataclass
class PhaseResult:
    fault: str
    sent: int = 0
    acked: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    gaps: int = 0
    sync_missing: int = 0
    unacked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    died: list[str] = field(default_factory=list)
    longest_ack_pause_s: float = 0.0  # the longest time in the phase in which no client got an ack
    ack_p50_s: float = 0.0  # first send -> first ack, resends included in the wait
    ack_p99_s: float = 0.0
    recovery_s: float | None = None
    # broker fault: the node killed, fault -> the upstream topic led by another node, and
    # restart (client port open) -> every partition of GoChat's topics in sync on 3 replicas
    broker_killed: str = ""
    leader_moved_s: float | None = None
    rejoin_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicated == 0 and self.gaps == 0 and self.sync_missing == 0
                and self.unacked == 0 and not self.died
                and (self.fault in ("none", "soak") or self.recovery_s is not None)
                and (self.fault != "broker" or self.rejoin_s is not None))


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.infra = Infra()
        self.stack: Stack | None = None
        self.load: Load | None = None
        self.results: list[PhaseResult] = []
        self.soak: dict[str, Any] = {}
        self.broker_watch: dict[str, Any] = {}
        self.scale_out_work: dict[str, float] = {}

    # --- setup --------------------------------------------------------------------

    def setup(self) -> None:
        from django.core.management import call_command
        from django.db import connections

        connections.close_all()  # a connection to an earlier run's database is stale
        self.infra.start()
        services.ensure_database()
        call_command("migrate", verbosity=0)
        create_topics()
        self.stack = ScaledStack() if SCALE_OUT else Stack()
        self.stack.start()
        conversations = self.pairs(self.args.pairs)
        if SCALE_OUT:
            conversations += self.groups(self.args.groups)
        self.load = Load(conversations, [ws_url("tgw1"), ws_url("tgw2")], self.args.rate)
        self.load.start()

    def teardown(self) -> None:
        if self.load is not None:
            self.load.stop()
        if self.stack is not None:
            self.stack.stop()
        self.infra.stop()

    @staticmethod
    def pairs(count: int) -> list[tuple[tuple[int, str], tuple[int, str], str]]:
        from rest_framework_simplejwt.tokens import AccessToken

        from accounts.models import User

        names = [f"chaos{i}" for i in range(2 * count)]
        User.objects.bulk_create([User(username=n, password="!") for n in names], ignore_conflicts=True)
        ids = dict(User.objects.filter(username__in=names).values_list("username", "id"))
        users = [(ids[n], str(AccessToken.for_user(User(pk=ids[n])))) for n in names]
        out = []
        for i in range(count):
            (a, ta), (b, tb) = users[2 * i], users[2 * i + 1]
            out.append(((a, ta), (b, tb), f"s_{min(a, b)}_{max(a, b)}"))
        return out

    @staticmethod
    def groups(count: int) -> list[tuple[tuple[int, str], tuple[int, str], str]]:
        """`count` small groups of 6 and one large group of LARGE_GROUP_MEMBERS, each as
        (owner: the sender, one member: the watched recipient, conversation id). The load
        puts the two on different gateways; the other members stay offline (the large
        group's chunks still page through them all)."""
        from rest_framework_simplejwt.tokens import AccessToken

        from accounts.models import User
        from groups.models import Group, GroupMember

        sizes = [6] * count + [LARGE_GROUP_MEMBERS]
        names = [f"chaosg{g}m{m}" for g, size in enumerate(sizes) for m in range(size)]
        User.objects.bulk_create([User(username=n, password="!") for n in names], ignore_conflicts=True)
        ids = dict(User.objects.filter(username__in=names).values_list("username", "id"))
        out = []
        for g, size in enumerate(sizes):
            members = [ids[f"chaosg{g}m{m}"] for m in range(size)]
            group = Group.objects.create(name=f"chaos {g}", owner_id=members[0], member_count=size)
            GroupMember.objects.bulk_create([GroupMember(group=group, user_id=u, role="owner" if i == 0 else "member")
                                             for i, u in enumerate(members)])
            owner, member = members[0], members[1]
            out.append(((owner, str(AccessToken.for_user(User(pk=owner)))),
                        (member, str(AccessToken.for_user(User(pk=member)))), f"g_{group.id}"))
        return out

    # --- faults -------------------------------------------------------------------

    def inject(self, fault: str) -> Callable[..., None]:
        """Inject the fault now; returns the restart a supervisor would do."""
        assert self.stack is not None
        if fault == "worker":
            self.stack.persist_worker.kill()
            return self.stack.persist_worker.start
        if fault == "logic":
            self.stack.logic.kill()
            return self.stack.logic.start
        if fault == "gateway":
            self.stack.gateways["tgw2"].kill()
            return self.stack.gateways["tgw2"].start
        if fault == "redis":
            self.infra.redis.kill()
            return self.infra.redis.start
        if fault == "mysql":
            self.infra.mysql.stop(timeout=30)  # a clean stop: the database is down, not crashed
            return self.infra.mysql.start
        if fault == "broker":
            return self.kill_broker()
        raise ValueError(fault)

    def kill_broker(self) -> Callable[..., None]:
        """kill -9 of the node leading the upstream topic; GoChat's processes stay as they are.
        A thread notes when another node leads the topic, and, after the restart, when every
        partition of GoChat's topics is in sync on all three nodes again."""
        from gochat_project.infra import kafka

        admin = admin_client()
        node_id = partition_leader(admin, kafka.upstream_topic())
        if node_id not in self.infra.brokers:
            node_id = next(iter(self.infra.brokers))  # no leader known: any node
        broker = self.infra.broker_of(node_id)
        watch: dict[str, Any] = {"node": node_id, "killed_at": time.monotonic()}
        self.broker_watch = watch
        broker.kill()
        restarted = threading.Event()

        def follow() -> None:
            while not restarted.is_set() and not ("leader_moved_at" in watch and "isr_shrunk_at" in watch):
                with contextlib.suppress(Exception):
                    if ("leader_moved_at" not in watch
                            and partition_leader(admin, kafka.upstream_topic()) not in (node_id, -1)):
                        watch["leader_moved_at"] = time.monotonic()
                    if "isr_shrunk_at" not in watch and under_replicated(admin):
                        watch["isr_shrunk_at"] = time.monotonic()
                time.sleep(0.1)
            restarted.wait()
            deadline = time.monotonic() + REJOIN_TIMEOUT_S
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    watch["under_replicated"] = under_replicated(admin)
                    if not watch["under_replicated"]:
                        watch["rejoined_at"] = time.monotonic()
                        return
                time.sleep(0.25)

        watch["thread"] = threading.Thread(target=follow, name="chaos-broker-watch", daemon=True)
        watch["thread"].start()

        def restart(timeout: float = 120) -> None:
            watch["restart_began_at"] = time.monotonic()
            broker.start(timeout=timeout)
            watch["restarted_at"] = time.monotonic()
            restarted.set()

        return restart

    def broker_figures(self, result: PhaseResult) -> None:
        watch = self.broker_watch
        watch["thread"].join(REJOIN_TIMEOUT_S + 10)
        result.broker_killed = f"kafka-{watch['node']}"
        if "leader_moved_at" in watch:
            result.leader_moved_s = round(watch["leader_moved_at"] - watch["killed_at"], 2)
        if "rejoined_at" in watch:
            result.rejoin_s = round(watch["rejoined_at"] - watch["restarted_at"], 2)
        moved = f"{result.leader_moved_s:.1f} s" if result.leader_moved_s is not None else "not before the restart"
        shrunk = (f"{watch['isr_shrunk_at'] - watch['killed_at']:.1f} s" if "isr_shrunk_at" in watch
                  else "not before the restart")
        rejoin = (f"{result.rejoin_s:.1f} s after its restart" if result.rejoin_s is not None else
                  f"NOT within {REJOIN_TIMEOUT_S:.0f} s: {', '.join(watch.get('under_replicated', ['?'])[:4])}")
        started = watch.get("restarted_at", 0.0) - watch.get("restart_began_at", 0.0)
        result.notes.append(f"killed {result.broker_killed} (upstream leader), down {BROKER_DOWN_S:.0f} s; "
                            f"upstream led elsewhere after {moved}, ISRs down to 2 after {shrunk}; "
                            f"restart took {started:.1f} s; ISR 3 again {rejoin}")

    def run_phase(self, fault: str, *, duration: float, down_s: float) -> PhaseResult:
        assert self.load is not None and self.stack is not None
        result = PhaseResult(fault)
        load = self.load
        reconnects0 = sum(d.reconnects for d in load.devices())
        load.begin_phase(fault)
        started = time.monotonic()
        time.sleep(self.args.lead_seconds)
        fault_at = time.monotonic()
        fault_ms = int(time.time() * 1000)
        stored_at: list[float] = []
        watcher = threading.Thread(target=self.watch_storage, args=(fault_ms, stored_at, duration + 120), daemon=True)
        if fault != "none":
            restart = self.inject(fault)
            watcher.start()
            time.sleep(down_s)
            restart(timeout=120)
        time.sleep(max(0.0, duration - (time.monotonic() - started)))
        if not load.end_phase(drain_timeout=self.args.drain_seconds):
            stuck = sorted({s.device.conversation_id for s in load.senders if s.pending})
            result.notes.append(f"sends still unacked after {self.args.drain_seconds}s in {len(stuck)} "
                                f"conversation(s): {', '.join(stuck[:5])}")
        self.verify(result)
        result.reconnects = sum(d.reconnects for d in load.devices()) - reconnects0
        result.notes += [f"{why} x{n}" for why, n in sorted(load.closes.items())]
        load.closes.clear()
        result.died = [p.name for p in [*self.stack.all(), *self.infra.all()] if not p.running()]
        if fault != "none":
            watcher.join(60)
            result.recovery_s = self.recovery(fault_at, stored_at)
        if fault == "broker":
            self.broker_figures(result)
        result.longest_ack_pause_s = self.longest_ack_pause(started)
        return result

    @staticmethod
    def watch_storage(fault_ms: int, stored_at: list[float], timeout: float) -> None:
        """When did MySQL first hold a message that logic stamped after the fault?"""
        from messaging.models import Message

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if Message.objects.filter(ts__gt=fault_ms).exists():
                    stored_at.append(time.monotonic())
                    return
            except Exception:
                close_old_connections()
            time.sleep(0.25)

    def recovery(self, fault_at: float, stored_at: list[float]) -> float | None:
        """Fault -> every sender has had a message sent after the fault acked and delivered
        to its peer, and MySQL holds a message processed after the fault."""
        assert self.load is not None
        if not stored_at:
            return None
        done = stored_at[0]
        peers = {d.conversation_id: d for d in self.load.recipients}
        for s in self.load.senders:
            completions = []
            for cmid, sent in s.sent_at.items():
                if sent < fault_at or not s.acks.get(cmid):
                    continue
                ack = s.acks[cmid][0]
                held = peers[s.device.conversation_id].held.get(ack.message_id)
                if held is not None:
                    completions.append(max(ack.at, held[2]))
            if not completions:
                return None
            done = max(done, min(completions))
        return round(done - fault_at, 2)

    def longest_ack_pause(self, since: float) -> float:
        assert self.load is not None
        times = sorted(a[0].at for s in self.load.senders for c, a in s.acks.items() if a and a[0].at >= since)
        return round(max((b - a for a, b in itertools.pairwise(times)), default=0.0), 2)

    # --- checks -------------------------------------------------------------------

    def verify(self, r: PhaseResult) -> None:
        from messaging.models import Message

        assert self.load is not None
        load = self.load
        prefix = f"{r.fault}-"
        acked: dict[tuple[int, str], Any] = {}
        for s in load.senders:
            for cmid in s.sent_at:
                if not cmid.startswith(prefix):
                    continue
                r.sent += 1
                acks = s.acks.get(cmid, [])
                if acks:
                    acked[(s.device.user_id, cmid)] = acks[0]
                if len(acks) > 1:
                    r.duplicated += 1  # one send acked as two different messages
            r.unacked += sum(1 for c in s.pending if c.startswith(prefix))
            for code, n in s.errors.items():
                r.errors[code] = r.errors.get(code, 0) + n
            s.errors.clear()
        r.acked = len(acked)
        waits = sorted(s.acks[c][0].at - s.sent_at[c] for s in load.senders for c in s.sent_at
                       if c.startswith(prefix) and s.acks.get(c))
        if waits:
            r.ack_p50_s = round(waits[len(waits) // 2], 2)
            r.ack_p99_s = round(waits[min(len(waits) - 1, len(waits) * 99 // 100)], 2)
        cids = [s.device.conversation_id for s in load.senders]

        def rows() -> list[tuple[str, int, int, str, int]]:
            close_old_connections()
            return list(Message.objects.filter(conversation_id__in=cids).values_list(
                "conversation_id", "seq", "sender_id", "client_msg_id", "message_id"))

        def all_stored() -> list[tuple[str, int, int, str, int]] | None:
            current = rows()
            have = {(sender, cmid) for _, _, sender, cmid, _ in current}
            return (current,) if all(k in have for k in acked) else None

        try:
            (stored,) = wait_until(all_stored, self.args.drain_seconds, "acked messages to be stored", interval=0.5)
        except TimeoutError:
            stored = rows()
            r.notes.append("not every acked message was stored in time")
        by_key: dict[tuple[int, str], list[tuple[int, str]]] = {}
        seqs: dict[str, list[int]] = {}
        for cid, seq, sender, cmid, mid in stored:
            seqs.setdefault(cid, []).append(seq)
            if cmid.startswith(prefix):
                by_key.setdefault((sender, cmid), []).append((seq, str(mid)))
        r.stored = sum(len(v) for v in by_key.values())
        r.duplicated += sum(len(v) - 1 for v in by_key.values())
        group_cids = {s.device.conversation_id for s in load.senders if s.device.conversation_id.startswith("g_")}
        group_senders = {s.device.user_id for s in load.senders if s.device.conversation_id in group_cids}
        group_lost = 0
        for key, ack in acked.items():
            if by_key.get(key, [None])[0] != (ack.seq, ack.message_id):
                r.lost += 1
                group_lost += key[0] in group_senders
        if group_cids:  # the group share of the figures, in the notes
            group_acked = sum(1 for sender, _ in acked if sender in group_senders)
            group_dup = sum(len(v) - 1 for (sender, _), v in by_key.items() if sender in group_senders)
            group_gaps = sum(1 for cid, v in seqs.items() if cid in group_cids and len(v) != max(v))
            r.notes.append(f"groups: {group_acked} acked, {group_lost} lost, {group_dup} dup, {group_gaps} gaps")
        for cid, v in seqs.items():
            missing = sorted(set(range(1, max(v) + 1)) - set(v))
            if missing or len(v) != max(v):
                r.gaps += 1
                r.notes.append(f"{cid} lacks seqs {missing[:10]} of 1..{max(v)}")

        load.sync_all()
        by_cid: dict[str, set[str]] = {}
        for s in load.senders:
            ids = {acks[0].message_id for cmid, acks in s.acks.items() if cmid.startswith(prefix) and acks}
            by_cid[s.device.conversation_id] = ids
        for d in load.devices():
            r.sync_missing += len(by_cid[d.conversation_id] - d.held.keys())


    # --- soak ---------------------------------------------------------------------

    def run_soak(self, seconds: float) -> PhaseResult:
        from gochat_project.infra import kafka
        from messaging.logic import logic_group_id

        assert self.load is not None and self.stack is not None
        procs = {p.name: p for p in [*self.stack.all(), *self.infra.all()]}
        groups = {"upstream (logic)": (logic_group_id(), kafka.upstream_topic()),
                  "persist (worker)": (kafka.celery_consumer_group(kafka.persist_topic()), kafka.persist_topic())}
        rss: dict[str, list[int]] = {name: [] for name in procs}
        cpu: dict[str, list[float]] = {name: [] for name in procs}  # % of one core over each interval
        lags: dict[str, list[int]] = {name: [] for name in groups}
        self.load.rate = self.args.soak_rate or self.args.rate
        self.load.begin_phase("soak")
        started = time.monotonic()
        last_cpu = {name: (time.monotonic(), tree_cpu_s(p.proc.pid)) for name, p in procs.items() if p.proc}
        while time.monotonic() - started < seconds:
            time.sleep(max(0.0, min(5.0, seconds - (time.monotonic() - started))))
            for name, p in procs.items():
                if p.proc is not None and p.running():
                    rss[name].append(tree_rss_kib(p.proc.pid))
                    now, used = time.monotonic(), tree_cpu_s(p.proc.pid)
                    t0, used0 = last_cpu.get(name, (now, used))
                    if now > t0 and used >= used0:
                        cpu[name].append(round(100 * (used - used0) / (now - t0), 1))
                    last_cpu[name] = (now, used)
            for name, (group, topic_name) in groups.items():
                with contextlib.suppress(Exception):
                    lags[name].append(kafka.consumer_group_lag(group, topic_name, timeout=5.0))
        # list(): a copy made at once, while the load's thread may still be adding to it
        offered = sum(1 for s in self.load.senders for c in list(s.sent_at) if c.startswith("soak-"))
        result = PhaseResult("soak")
        if not self.load.end_phase(drain_timeout=self.args.drain_seconds):
            result.notes.append("sends still unacked after the soak")
        self.verify(result)
        result.died = [name for name, p in procs.items() if not p.running()]
        result.longest_ack_pause_s = self.longest_ack_pause(started)
        self.soak = {"seconds": seconds, "rate": self.load.rate, "offered_rate": round(offered / seconds, 1),
                     "rss_kib": rss, "cpu_pct": cpu, "lag": lags}
        self.load.rate = self.args.rate
        return result

    @staticmethod
    def quarters(samples: list[Any]) -> tuple[float, float]:
        """Mean of the first and of the last quarter of the samples."""
        q = max(1, len(samples) // 4)
        return sum(samples[:q]) / q, sum(samples[-q:]) / q

    def soak_verdict(self) -> list[str]:
        """Memory flat: no GoChat process and no broker has a mean RSS in the last quarter of
        the soak more than 10 % above its mean in the first quarter. Lag bounded: never more
        than 10 s of traffic behind."""
        problems = []
        judged = {p.name for p in self.stack.all()} if self.stack else set()
        judged |= {p.name for p in self.infra.brokers.values()}
        for name, samples in self.soak.get("rss_kib", {}).items():
            if name not in judged or len(samples) < 4:
                continue
            first, last = self.quarters(samples)
            if last > first * 1.10:
                problems.append(f"{name} RSS grew {first / 1024:.1f} -> {last / 1024:.1f} MiB "
                                "(first -> last quarter, more than 10 %)")
        for name, values in self.soak.get("lag", {}).items():
            if values and max(values) > self.soak["rate"] * 10:
                problems.append(f"{name} lag reached {max(values)} records")
        return problems

    # --- report -------------------------------------------------------------------

    def table(self) -> str:
        head = ("fault", "sent", "acked", "stored", "lost", "dup", "gaps", "sync miss", "ack p50 / p99 s",
                "ack pause s", "recovery s", "reconnects", "notes")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.results:
            notes = [*r.notes, *(f"died: {d}" for d in r.died),
                     *(f"{code} x{n}" for code, n in sorted(r.errors.items()))]
            rec = "-" if r.fault in ("none", "soak") else (f"{r.recovery_s:.1f}" if r.recovery_s is not None
                                                           else "NOT RECOVERED")
            lines.append("| " + " | ".join(str(x) for x in (
                r.fault, r.sent, r.acked, r.stored, r.lost, r.duplicated, r.gaps, r.sync_missing,
                f"{r.ack_p50_s:.2f} / {r.ack_p99_s:.2f}", f"{r.longest_ack_pause_s:.1f}", rec, r.reconnects,
                "; ".join(notes))) + " |")
        if self.soak:
            lines.append("")
            lines.append(f"soak {self.soak['seconds']:.0f} s at {self.soak['rate']:.0f} msg/s "
                         f"({self.soak['offered_rate']:.0f} offered): mean of the first -> last quarter: "
                         "RSS MiB, CPU % of a core; max consumer lag")
            for name, samples in self.soak["rss_kib"].items():
                if len(samples) >= 4:
                    rss0, rss1 = self.quarters(samples)
                    cpu0, cpu1 = self.quarters(self.soak["cpu_pct"].get(name) or [0.0])
                    lines.append(f"  {name:<18} {rss0 / 1024:7.1f} -> {rss1 / 1024:7.1f} MiB   "
                                 f"CPU {cpu0:5.1f} -> {cpu1:5.1f} %")
            for name, values in self.soak["lag"].items():
                lines.append(f"  lag {name:<14} max {max(values, default=-1)}, last "
                             f"{values[-1] if values else -1}")
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faults", nargs="*", default=["all"],
                        help=f"any of {', '.join(FAULTS)}, all, or none (only the soak)")
    parser.add_argument("--rate", type=float, default=200.0, help="messages a second, all senders together")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--groups", type=int, default=8, help="--scale-out: small groups beside the large one")
    parser.add_argument("--phase-seconds", type=float, default=25.0,
                        help="load per fault phase (the broker phase: at least the lead, 10 s down and 20 s more)")
    parser.add_argument("--lead-seconds", type=float, default=5.0, help="steady load before each fault")
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument("--soak-seconds", type=float, default=1800.0, help="0 skips the soak")
    parser.add_argument("--soak-rate", type=float, default=500.0, help="messages a second in the soak")
    parser.add_argument("--scale-out", action="store_true",
                        help="two of every process kind, several partitions; a fault kills one of the two")
    args = parser.parse_args()
    faults = FAULTS if "all" in args.faults else [f for f in args.faults if f != "none"]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(sorted(unknown))}")

    # Every fault and the soak run on one cluster and one set of GoChat processes, in turn.
    started = time.monotonic()
    chaos = Chaos(args)
    try:
        chaos.setup()
        chaos.results.append(chaos.run_phase("none", duration=args.phase_seconds / 2, down_s=0))
        if isinstance(chaos.stack, ScaledStack):  # both of each kind must have worked, or the run proves little
            chaos.scale_out_work = chaos.stack.work()
            print(f"chaos: work per process in the first phase: {chaos.scale_out_work}", flush=True)
        for fault in faults:
            print(f"chaos: {fault} ...", flush=True)
            if fault == "broker":
                duration = max(args.phase_seconds, args.lead_seconds + BROKER_DOWN_S + 20)
                chaos.results.append(chaos.run_phase(fault, duration=duration, down_s=BROKER_DOWN_S))
            else:
                chaos.results.append(chaos.run_phase(fault, duration=args.phase_seconds,
                                                     down_s=10.0 if fault == "mysql" else 3.0))
        if args.soak_seconds > 0:
            print(f"chaos: soak {args.soak_seconds:.0f} s ...", flush=True)
            chaos.results.append(chaos.run_soak(args.soak_seconds))
    finally:
        chaos.teardown()
    table = chaos.table()
    print(table)
    problems = [f"{r.fault}: lost/duplicated/gaps/unsynced/unrecovered" for r in chaos.results if not r.ok()]
    problems += [f"broker: no ack for {r.longest_ack_pause_s:.1f} s (more than {BROKER_ACK_PAUSE_LIMIT_S:.0f} s)"
                 for r in chaos.results if r.fault == "broker" and r.longest_ack_pause_s > BROKER_ACK_PAUSE_LIMIT_S]
    problems += chaos.soak_verdict()
    problems += [f"scale-out: {name} did no work (it held no partition)" for name, n in chaos.scale_out_work.items()
                 if n == 0]
    out = ROOT / "chaos-results"
    out.mkdir(exist_ok=True)
    path = out / time.strftime("%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps({"args": vars(args), "phases": [vars(r) for r in chaos.results],
                                "soak": chaos.soak, "scale_out_work": chaos.scale_out_work, "problems": problems,
                                "seconds": round(time.monotonic() - started)}, indent=1))
    print(f"written {path.relative_to(ROOT)} ({time.monotonic() - started:.0f} s)")
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
