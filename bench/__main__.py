"""GoChat benchmarks: `python -m bench [scenario ...] [options]` (`make bench` runs all).

Starts its own stack (database gochat_bench, Redis db 11, an embedded Apache Kafka
node on 19392, topic prefix gochat_bench, gateways on 18301/18302) with DEBUG off, so
it runs beside `make run` and the tests. BENCH_PORT_OFFSET=N adds N to every port and
_N to the database and topic prefix, and BENCH_REDIS_DB picks the Redis db, so two
checkouts can bench at once. Every stack gets a fresh broker on an empty log directory.
Scenarios:
  broker-idle  the Kafka broker alone (own node on 19500): idle CPU and RSS, then with idle consumers
  throughput   1:1, N pairs sending as fast as acks return (window W per sender)
  latency      1:1 at fixed total rates, sends spread evenly with random phase
  connections  idle WebSocket connections on one gateway process: RSS per connection, connect time
  large-group  a seeded 100,000-member group with K members online: send -> last delivery,
               then one reaction on a message there -> its last `reaction` push
  baseline     a plain Channels chat (group_send on channels-redis) under the same generator
  kafka-floor  the broker's raw produce -> consume round trip
  index-lag    1:1 at a fixed rate: send -> searchable and send -> stored (bench/index_lag.py)
Every figure is repeated --repeat times (min/median/max); results are printed as a
table and written to bench-results/<timestamp>.json. Each measured window records
every server process's CPU (% of a core, over the sending phase) and peak RSS: the
Kafka broker (`kafka`), GoChat's processes, MariaDB and Redis.
"""

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
_SUFFIX = f"_{PORT_OFFSET}" if PORT_OFFSET else ""
BENCH_DATABASE = f"gochat_bench{_SUFFIX}"
BENCH_ENV = {
    "GOCHAT_DATABASE_URL": f"mysql://root@127.0.0.1:3306/{BENCH_DATABASE}",
    "GOCHAT_REDIS_URL": f"redis://127.0.0.1:6379/{int(os.environ.get('BENCH_REDIS_DB', '11'))}",
    "GOCHAT_KAFKA_BOOTSTRAP": f"127.0.0.1:{19392 + PORT_OFFSET}",
    "GOCHAT_KAFKA_EMBEDDED": "1",
    "GOCHAT_TOPIC_PREFIX": f"gochat_bench{_SUFFIX}",
    "GOCHAT_GATEWAY_ID": "tgw1",
    "GOCHAT_GATEWAY_IDS": "tgw1,tgw2",
    "GOCHAT_TEST_PORT_BASE": str(18300 + PORT_OFFSET),
    "GOCHAT_WS_SEND_RATE": "100000",
    "GOCHAT_WS_SEND_BURST": "100000",
    "GOCHAT_ACCESS_TOKEN_MINUTES": "1440",  # tokens outlive the run (a socket closes with 4401 at its expiry)
    "GOCHAT_THROTTLE_AUTH": "100000/min",
    "GOCHAT_THROTTLE_USER": "1000000/min",
    "GOCHAT_DAPHNE_VERBOSITY": "0",
    "DJANGO_DEBUG": "0",
    "DJANGO_SETTINGS_MODULE": "gochat_project.settings",
}
os.environ.update(BENCH_ENV)
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

import multiprocessing as mp  # noqa: E402

from bench import broker_idle, index_lag, loadgen  # noqa: E402
from bench.procfs import proc_cpu_s, proc_rss_kib  # noqa: E402
from tests.stack import GATEWAY_PORTS, VENV_BIN, Process, Stack, wait_until, ws_url  # noqa: E402

_STARTED = time.monotonic()


def warm_broker(bootstrap: str, seconds: float) -> int:
    """Produce and consume through the broker for `seconds` (an idempotent acks=all
    producer, keyed records on a scratch topic of 4 partitions, a group consumer
    committing as it goes): the JVM compiles the paths GoChat's traffic takes. Returns
    the records that went round."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from gochat_project.infra import kafka

    topic = "bench-warmup"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    with contextlib.suppress(Exception):  # already there
        admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(15)
    producer = Producer(kafka.producer_config(**{"bootstrap.servers": bootstrap}))
    consumer = Consumer(kafka.consumer_config("bench-warmup", **{"bootstrap.servers": bootstrap}))
    consumer.subscribe([topic])
    received = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for i in range(200):
                producer.produce(topic, key=str(i).encode(), value=b"x" * 300)
            producer.poll(0)
            for m in consumer.consume(num_messages=500, timeout=0.005):
                received += m.error() is None
            if received % 5000 < 500:
                consumer.commit(asynchronous=True)
            time.sleep(0.01)
        producer.flush(10)
    finally:
        consumer.close()
    admin.delete_topics([topic])[topic].result(30)
    return received


def progress(line: str) -> None:
    """A progress line with the time since the bench started (the whole run must fit 15 minutes)."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {line}", flush=True)


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack: Stack | None = None
        self.baseline_pids: dict[str, int] = {}
        self.own_broker = False
        self.results: dict[str, Any] = {"machine": machine(), "args": vars(args), "scenarios": {},
                                        "scenario_seconds": {}}

    # --- setup ------------------------------------------------------------------

    def start_stack(self, gochat: bool = True, fresh_db: bool = True) -> Stack | None:
        """A fresh Redis db, GoChat's topics and consumer groups made anew on the bench's
        broker, (unless gochat=False) GoChat's processes and (unless fresh_db=False)
        database."""
        import MySQLdb
        from django.core.management import call_command

        from gochat_project.infra import redis_client
        from gochat_project.ops import services

        if fresh_db:
            conn = MySQLdb.connect(host="127.0.0.1", user="root")
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")
            conn.close()
        if self.own_broker:
            self.reset_kafka()
        else:
            self.start_broker()
        services.services_up()
        if fresh_db:
            call_command("migrate", verbosity=0)
        redis_client.client().flushdb()
        if not gochat:
            return None
        stack = Stack()
        stack.start()
        self.stack = stack
        self.prime()
        return stack

    def prime(self) -> None:
        """One message through a fresh stack before anything is measured. Its first send
        pays once-only costs no window should: Redis starts empty, so the logic first
        waits for persistence to drain before it seeds sequence counters, and a new
        broker's coordinators load while the first producers and groups use them
        (seconds on a busy machine; more than the latency warm-up)."""
        import asyncio

        import orjson
        import websockets

        assert self.stack is not None
        [pair] = self.pairs(1, "prime")

        async def run() -> None:
            url = ws_url("tgw1")
            async with websockets.connect(f"{url}?token={pair.sender_token}") as sender, \
                    websockets.connect(f"{url}?token={pair.recipient_token}") as recipient:
                cmid = f"prime-{time.time_ns()}"
                await sender.send(orjson.dumps({"type": "send", "client_msg_id": cmid, "body": "prime",
                                                "conversation_id": pair.conversation_id}).decode())
                while True:
                    frame = orjson.loads(await recipient.recv())
                    if frame.get("type") == "message" and frame["message"]["client_msg_id"] == cmid:
                        return

        t = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(run(), 90))
        except TimeoutError as exc:
            dead = [p.name for p in self.stack.all() if not p.running()]
            raise RuntimeError(f"a first message was not delivered within 90 s (exited: {dead or 'none'}; "
                               f"logs in {self.stack.logic.log_path.parent})") from exc
        progress(f"stack primed: first message delivered in {(time.monotonic() - t) * 1000:.0f} ms")

    def stop_stack(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    def start_broker(self) -> None:
        """The bench's own broker, on its own port and an empty log, started once per run
        and warmed up: a fresh JVM spends its first minute compiling Kafka's hot paths
        (measured: the broker at 52 % of a core at 100 msg/s on a JVM started seconds
        before, 4 % idle), which no figure of a long-running broker should carry."""
        from django.conf import settings

        from gochat_project.ops import services

        node = services.embedded_nodes(settings.KAFKA_BOOTSTRAP)[0]
        if services.port_open(settings.KAFKA_BOOTSTRAP):
            # A broker left by a killed run holds old topics, offsets and groups.
            raise RuntimeError(f"{settings.KAFKA_BOOTSTRAP} is taken (a stale bench run?); stop it first "
                               f"(its pid, if the bench started it: {node.pid_file})")
        shutil.rmtree(node.directory, ignore_errors=True)
        self.own_broker = True  # set first: a broker that fails to register is stopped too
        services.broker_start(settings.KAFKA_BOOTSTRAP)
        started = time.monotonic()
        records = warm_broker(settings.KAFKA_BOOTSTRAP, seconds=self.args.broker_warmup)
        progress(f"broker warmed up: {records} records produced and consumed in {time.monotonic() - started:.0f} s")

    def reset_kafka(self) -> None:
        """Delete GoChat's topics and consumer groups on the bench's broker (services_up
        then makes the topics anew): no record, offset or group of an earlier stack
        survives into the next, while the broker's JVM stays warm."""
        from confluent_kafka.admin import AdminClient

        from gochat_project.infra import kafka
        from messaging.logic import logic_group_id

        admin = AdminClient(kafka.common_config())
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{kafka.topic('')}")]
        groups = [logic_group_id(), *(kafka.celery_consumer_group(q) for q in (kafka.persist_topic(),
                                                                               kafka.fanout_topic()))]
        for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
            with contextlib.suppress(Exception):  # a group that never committed does not exist
                future.result()
        if topics:
            for future in admin.delete_topics(topics, operation_timeout=30).values():
                future.result()
        wait_until(lambda: not set(topics) & set(admin.list_topics(timeout=10).topics), 30, "topics deleted",
                   interval=0.2)

    def close(self) -> None:
        from django.conf import settings

        from gochat_project.ops import services

        self.stop_stack()
        if self.own_broker:
            services.broker_stop(settings.KAFKA_BOOTSTRAP)
            self.own_broker = False

    @staticmethod
    def broker_pid() -> int | None:
        """The pid of the bench's broker (its node's pid file), if it runs."""
        from django.conf import settings

        from gochat_project.ops import services

        pid_file = services.embedded_nodes(settings.KAFKA_BOOTSTRAP)[0].pid_file
        return int(pid_file.read_text()) if pid_file.exists() else None

    def server_pids(self) -> dict[str, int]:
        """GoChat's processes plus what they stand on (the Kafka broker, MySQL, Redis)."""
        from urllib.parse import urlsplit

        from django.conf import settings

        assert self.stack is not None
        pids = {p.name: p.proc.pid for p in self.stack.all() if p.proc is not None}
        broker = self.broker_pid()
        if broker is not None:
            pids["kafka"] = broker
        # The servers the bench's stack uses: the ones listening on its ports (other
        # MariaDB and Redis instances may run on this machine).
        redis_port = urlsplit(settings.GOCHAT_REDIS_URL).port or 6379
        for name, port in (("mariadbd", int(settings.DATABASES["default"]["PORT"] or 3306)),
                           ("redis-server", redis_port)):
            pid = listener_pid(port)
            if pid is not None:
                pids[name] = pid
        return pids

    def users(self, count: int, prefix: str) -> list[tuple[int, str]]:
        """(id, access token) for `count` bulk-created users."""
        from rest_framework_simplejwt.tokens import AccessToken

        from accounts.models import User

        names = [f"{prefix}{i}" for i in range(count)]
        User.objects.bulk_create([User(username=n, password="!") for n in names], batch_size=5000,
                                 ignore_conflicts=True)
        ids = dict(User.objects.filter(username__startswith=prefix).values_list("username", "id"))
        return [(ids[n], str(AccessToken.for_user(User(pk=ids[n])))) for n in names]

    @staticmethod
    def tokens(usernames: list[str]) -> list[str]:
        """Access tokens of existing users, in the order given."""
        from rest_framework_simplejwt.tokens import AccessToken

        from accounts.models import User

        ids: dict[str, int] = {}
        for i in range(0, len(usernames), 5000):
            ids.update(User.objects.filter(username__in=usernames[i:i + 5000]).values_list("username", "id"))
        return [str(AccessToken.for_user(User(pk=ids[n]))) for n in usernames]

    def pairs(self, count: int, prefix: str, baseline: bool = False) -> list[loadgen.Pair]:
        # The baseline has no accounts: its "token" is the user id.
        users = [(100000 + i, str(100000 + i)) for i in range(2 * count)] if baseline else self.users(2 * count, prefix)
        out = []
        for i in range(count):
            (a, ta), (b, tb) = users[2 * i], users[2 * i + 1]
            out.append(loadgen.Pair(a, ta, b, tb, f"s_{min(a, b)}_{max(a, b)}"))
        return out

    # --- running the generator -----------------------------------------------------

    def run_pairs(self, url: str, pairs: list[loadgen.Pair], *, duration: float, window: int = 1,
                  total_rate: float | None = None, warmup: float = 0.0, windows: int = 1, drain: float = 5.0,
                  server_pids: dict[str, int] | None = None) -> list[dict[str, Any]]:
        """Connect the pairs once and run `windows` measured windows on them: one entry per window."""
        workers = self.args.workers
        chunks = [pairs[i::workers] for i in range(workers)]
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        go = ctx.Event()
        readies = []
        procs = []
        for chunk in chunks:
            ready = ctx.Event()
            rate = total_rate / len(pairs) if total_rate else None
            p = ctx.Process(target=loadgen.pairs_worker, args=(url, chunk, ready, go, out, duration, window, rate),
                            kwargs={"warmup_s": warmup, "windows": windows, "drain_s": drain})
            p.start()
            procs.append(p)
            readies.append(ready)
        for r in readies:
            r.wait(120)
        pids = server_pids if server_pids is not None else self.server_pids()
        by_window: dict[int, list[loadgen.WorkerResult]] = {n: [] for n in range(windows)}
        runs = []
        sampler = Sampler(pids)
        sampler.start()
        cpu0 = {n: proc_cpu_s(pid) for n, pid in pids.items()}
        t0 = time.monotonic()
        go.set()
        for n in range(windows):
            # Windows run in step in every worker (same start, fixed lengths): window n is
            # over when every worker has reported it; its server CPU is read then.
            while len(by_window[n]) < len(procs):
                r = out.get(timeout=duration + warmup + drain + 120)
                by_window[r.window].append(r)
            cpu1 = {name: proc_cpu_s(pid) for name, pid in pids.items()}
            merged = loadgen.WorkerResult()
            for r in by_window[n]:
                merged.sent += r.sent
                merged.acked += r.acked
                merged.delivered += r.delivered
                merged.errors += r.errors
                merged.latencies_ms += r.latencies_ms
                merged.acked_ids += r.acked_ids
                merged.cpu_s += r.cpu_s
                merged.connect_failures += r.connect_failures
            # The sending phase every worker was in (CLOCK_MONOTONIC is system-wide).
            send_from = max(r.send_from for r in by_window[n])
            send_until = min(r.send_until for r in by_window[n])
            cpu_pct, rss_mib = sampler.between(send_from, send_until)
            runs.append({"result": merged, "elapsed": time.monotonic() - t0,
                         "server_cpu_s": {name: round(cpu1[name] - cpu0[name], 2) for name in pids},
                         "server_cpu_pct": cpu_pct, "server_rss_mib": rss_mib,
                         "generator_cpu_s": round(merged.cpu_s, 2)})
            cpu0, t0 = cpu1, time.monotonic()
        sampler.stop()
        for p in procs:
            p.join(10)
        return runs

    def persisted(self, acked_ids: list[tuple[str, int]], timeout: float = 120) -> dict[str, int]:
        """Wait for every acked message to be in MySQL; count gaps and missing rows."""
        from django.db.models import Count, Max

        from messaging.models import Message

        convs = sorted({c for c, _ in acked_ids})
        expected = len(acked_ids)

        def stored() -> int:
            return Message.objects.filter(conversation_id__in=convs).count()

        deadline = time.monotonic() + timeout
        while stored() < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        rows = Message.objects.filter(conversation_id__in=convs).values("conversation_id").annotate(
            n=Count("message_id"), m=Max("seq"))
        gaps = sum(r["m"] - r["n"] for r in rows)
        return {"stored": stored(), "expected": expected, "gaps": gaps, "missing": max(0, expected - stored())}

    # --- scenarios -------------------------------------------------------------------

    def throughput(self, *, baseline: bool = False, baseline_url: str | None = None) -> dict[str, Any]:
        a = self.args
        runs = []
        for i in range(a.repeat):
            if i and not baseline:
                # A fresh broker and processes per run, as per latency rate, keep the runs
                # independent: no run starts behind an earlier one's backlog or on its
                # topics. The database keeps growing, as a real one does.
                self.stop_stack()
                self.start_stack(fresh_db=False)
            pairs = self.pairs(a.pairs, f"tp{i}x" if not baseline else "", baseline=baseline)
            url = baseline_url if baseline else ws_url("tgw1")
            duration = a.baseline_duration if baseline else a.duration
            [r] = self.run_pairs(url, pairs, duration=duration, window=a.window,
                                 server_pids=self.baseline_pids if baseline else None)
            res: loadgen.WorkerResult = r["result"]
            run = {"sent": res.sent, "acked": res.acked, "delivered": res.delivered, "errors": res.errors,
                   "connect_failures": res.connect_failures,
                   "delivered_per_s": round(res.delivered / duration), "acked_per_s": round(res.acked / duration),
                   "p50_ms": round(percentile(res.latencies_ms, 50), 1),
                   "p99_ms": round(percentile(res.latencies_ms, 99), 1),
                   "server_cpu_s": r["server_cpu_s"], "server_cpu_pct": r["server_cpu_pct"],
                   "server_rss_mib": r["server_rss_mib"], "generator_cpu_s": r["generator_cpu_s"]}
            run["undelivered"] = res.acked - min(res.acked, res.delivered)  # acked, never pushed (after drain)
            if not baseline:
                run["persistence"] = self.persisted(res.acked_ids)
                run["lost"] = run["persistence"]["missing"]  # acked but not stored
            else:
                run["lost"] = run["undelivered"]  # the baseline stores nothing: not delivered is lost
            runs.append(run)
            progress(f"throughput run {i + 1}: {run}")
        return {"runs": runs, "delivered_per_s": spread([r["delivered_per_s"] for r in runs])}

    def latency(self, *, baseline: bool = False, baseline_url: str | None = None) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {}
        for n, rate in enumerate(a.rates):
            if n and not baseline:
                # A fresh stack (and broker) per rate, as per scenario, keeps the rates
                # independent: a rate measured after the others starts on empty topics too.
                self.stop_stack()
                self.start_stack()
            pairs = self.pairs(a.latency_pairs, f"lat{rate}x" if not baseline else "", baseline=baseline)
            url = baseline_url if baseline else ws_url("tgw1")
            # One connection set per rate, `repeat` windows on it: connecting 1,000 clients
            # per window cost more time than the windows themselves.
            windows = self.run_pairs(url, pairs, duration=a.latency_duration, total_rate=rate, warmup=3.0,
                                     windows=a.repeat, drain=2.0,
                                     server_pids=self.baseline_pids if baseline else None)
            runs = []
            for i, r in enumerate(windows):
                res = r["result"]
                run = {"offered_per_s": rate, "sent": res.sent, "delivered": res.delivered,
                       "p50_ms": round(percentile(res.latencies_ms, 50), 2),
                       "p95_ms": round(percentile(res.latencies_ms, 95), 2),
                       "p99_ms": round(percentile(res.latencies_ms, 99), 2),
                       "max_ms": round(max(res.latencies_ms or [float("nan")]), 2),
                       "server_cpu_s": r["server_cpu_s"], "server_cpu_pct": r["server_cpu_pct"],
                       "server_rss_mib": r["server_rss_mib"], "generator_cpu_s": r["generator_cpu_s"]}
                runs.append(run)
                progress(f"latency {rate}/s window {i + 1}: {run}")
            out[str(rate)] = {"runs": runs, "p50_ms": spread([r["p50_ms"] for r in runs]),
                              "p99_ms": spread([r["p99_ms"] for r in runs])}
            if not baseline:
                out[str(rate)]["kafka_cpu_pct"] = spread([r["server_cpu_pct"].get("kafka", float("nan"))
                                                          for r in runs])
        return out

    def index_lag(self) -> dict[str, Any]:
        """Send -> searchable, at --index-lag-rate for --latency-duration per window, beside
        send -> stored (bench/index_lag.py says how both are measured)."""
        import MySQLdb
        from django.conf import settings

        a = self.args
        db = settings.DATABASES["default"]

        def connect() -> Any:
            return MySQLdb.connect(host=db["HOST"] or "127.0.0.1", user=db["USER"], passwd=db["PASSWORD"],
                                   db=db["NAME"], port=int(db["PORT"] or 3306))

        pairs = self.pairs(a.latency_pairs, "lag")
        pollers = {"searchable": index_lag.IndexPoller(connect), "stored": index_lag.IndexPoller(connect,
                                                                                                 table="messages")}
        for poller in pollers.values():
            poller.start()
        windows = self.run_pairs(ws_url("tgw1"), pairs, duration=a.latency_duration, total_rate=a.index_lag_rate,
                                 warmup=3.0, windows=a.repeat, drain=2.0)
        acked = [i for w in windows for i in w["result"].acked_ids]
        out: dict[str, Any] = {"offered_per_s": a.index_lag_rate, "acked": len(acked),
                               "persistence": self.persisted(acked)}
        time.sleep(index_lag.WINDOW_S)  # the last rows are seen (or counted missed)
        for name, poller in pollers.items():
            poller.stop()
            lags, missed = poller.lags_ms()
            out[name] = {"rows": len(lags), "missed": missed, "polls": poller.polls,
                         "p50_ms": round(percentile(lags, 50), 1), "p95_ms": round(percentile(lags, 95), 1),
                         "p99_ms": round(percentile(lags, 99), 1), "max_ms": round(max(lags or [float("nan")]), 1)}
        progress(f"index lag: {out}")
        return out

    def connections(self) -> dict[str, Any]:
        a = self.args
        assert self.stack is not None
        gw = self.stack.gateways["tgw1"]
        assert gw.proc is not None
        users = self.users(a.connections, "conn")
        rss0 = proc_rss_kib(gw.proc.pid)
        ctx = mp.get_context("fork")
        out, go, stop = ctx.Queue(), ctx.Event(), ctx.Event()
        chunks = [[t for _, t in users[i::a.workers]] for i in range(a.workers)]
        readies, procs = [], []
        t0 = time.monotonic()
        for chunk in chunks:
            ready = ctx.Event()
            p = ctx.Process(target=loadgen.listeners_worker, args=(ws_url("tgw1"), chunk, ready, go, stop, out))
            p.start()
            procs.append(p)
            readies.append(ready)
        for r in readies:
            r.wait(600)
        connect_s = time.monotonic() - t0
        time.sleep(2)
        rss1 = proc_rss_kib(gw.proc.pid)
        stop.set()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(10)
        failures = sum(r.connect_failures for r in results)
        held = a.connections - failures
        return {"connections": held, "failed": failures, "connect_s": round(connect_s, 1),
                "connects_per_s": round(held / connect_s), "gateway_rss_mib": round(rss1 / 1024),
                "rss_per_connection_kib": round((rss1 - rss0) / max(1, held), 1),
                "generator_cpu_s": round(sum(r.cpu_s for r in results), 1)}

    def large_group(self) -> dict[str, Any]:
        from django.core.management import call_command

        from groups.models import Group

        a = self.args
        t0 = time.monotonic()
        call_command("seed_demo", users=a.group_size, group_size=a.group_size, prefix="lg", no_progress=True,
                     stdout=open(os.devnull, "w"))  # noqa: SIM115
        seed_s = time.monotonic() - t0
        group = Group.objects.filter(owner__username="lg0").latest("id")
        # Tokens only for the owner and the members who go online (100,000 cost ~10 s).
        step = max(1, a.group_size // a.online)
        chosen = [0, *list(range(1, a.group_size, step))[: a.online]]
        tokens = self.tokens([f"lg{i}" for i in chosen])
        owner_token, online = tokens[0], tokens[1:]
        ctx = mp.get_context("fork")
        out, go, stop = ctx.Queue(), ctx.Event(), ctx.Event()
        readies, procs = [], []
        for i in range(a.workers):
            ready = ctx.Event()
            gw = "tgw1" if i % 2 == 0 else "tgw2"
            p = ctx.Process(target=loadgen.listeners_worker, kwargs={"count_messages": True},
                            args=(ws_url(gw), online[i::a.workers], ready, go, stop, out))
            p.start()
            procs.append(p)
            readies.append(ready)
        for r in readies:
            r.wait(600)
        time.sleep(1)
        sends = self._send_group_messages(owner_token, group.conversation_id, a.group_sends)
        time.sleep(max(5.0, a.group_sends * 3.0))  # a backlog of sends drains at the fan-out worker's pace
        # Then one reaction on the first measured message: the same chunked fan-out, a
        # `reaction` frame instead of a `message` (docs/benchmarks.md, "Reaction ...").
        reacted_at = self._react(owner_token, sends[0][0])
        time.sleep(5.0)
        stop.set()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(10)
        receipts: dict[str, list[float]] = {}
        for r in results:
            for mid, times in r.receive_times.items():
                receipts.setdefault(mid, []).extend(times)
        online_n = len(online) - sum(r.connect_failures for r in results)
        per_message = []
        for mid, sent_at in sends:
            times = receipts.get(mid, [])
            per_message.append({"received_by": len(times),
                                "last_ms": round((max(times) - sent_at) * 1000) if times else None,
                                "p50_ms": round((percentile(times, 50) - sent_at) * 1000) if times else None})
        first = per_message[0]
        burst_last = max((m["last_ms"] or 0) for m in per_message)
        reactions = receipts.get(loadgen.reaction_key(sends[0][0]), [])
        return {"members": a.group_size, "online": online_n, "seed_s": round(seed_s, 1),
                "single_send_last_ms": first["last_ms"], "single_send_received_by": first["received_by"],
                "reaction_last_ms": round((max(reactions) - reacted_at) * 1000) if reactions else None,
                "reaction_p50_ms": round((percentile(reactions, 50) - reacted_at) * 1000) if reactions else None,
                "reaction_received_by": len(reactions),
                "sends": len(sends), "burst_last_delivery_ms": burst_last,
                "all_received": all(m["received_by"] == online_n for m in per_message), "per_message": per_message}

    def _send_group_messages(self, token: str, cid: str, count: int) -> list[tuple[str, float]]:
        """A warm-up message, then one message, its delivery window, then `count - 1` back to back."""
        import asyncio

        import orjson
        import websockets

        async def run() -> list[tuple[str, float]]:
            out = []
            async with websockets.connect(f"{ws_url('tgw1')}?token={token}", max_size=2**22) as ws:
                async def send(i: int) -> None:
                    await ws.send(orjson.dumps({"type": "send", "client_msg_id": f"lg-{time.time_ns()}-{i}",
                                                "conversation_id": cid, "body": f"to everyone {i}"}).decode())

                async def ack() -> dict[str, Any]:
                    while True:
                        frame = orjson.loads(await ws.recv())
                        if frame["type"] in ("ack", "error"):
                            return frame

                # A warm-up message first (not reported): the first fan-out of a fresh stack
                # also pays for producer set-up and the workers' first fetch.
                await send(-1)
                await ack()
                await asyncio.sleep(3)
                t = time.monotonic()
                await send(0)
                out.append(((await ack())["message_id"], t))
                await asyncio.sleep(3)
                times = []
                for i in range(1, count):
                    times.append(time.monotonic())
                    await send(i)
                for t in times:
                    out.append(((await ack())["message_id"], t))
            return out

        return asyncio.run(run())

    @staticmethod
    def _react(token: str, message_id: str) -> float:
        """The owner adds a reaction over its socket; returns when it was sent (monotonic).
        The owner's own `reaction` push (the acting connection gets one too) is not counted."""
        import asyncio

        import orjson
        import websockets

        async def run() -> float:
            async with websockets.connect(f"{ws_url('tgw1')}?token={token}", max_size=2**22) as ws:
                t = time.monotonic()
                await ws.send(orjson.dumps({"type": "react", "message_id": message_id, "emoji": "👍",
                                            "op": "add"}).decode())
                while (frame := orjson.loads(await ws.recv()))["type"] not in ("reaction", "error"):
                    pass
                if frame["type"] == "error":
                    raise RuntimeError(f"react refused: {frame}")
                return t

        return asyncio.run(run())

    def kafka_floor(self) -> dict[str, Any]:
        import uuid

        from confluent_kafka import Consumer, Producer

        from gochat_project.infra import kafka
        from gochat_project.ops import services

        topic = f"gochat_bench.floor{uuid.uuid4().hex[:6]}"
        services.ensure_topics({topic: 1})
        consumer = Consumer(kafka.consumer_config(f"floor-{uuid.uuid4().hex[:6]}",
                                                  **{"auto.offset.reset": "latest"}))
        consumer.subscribe([topic])
        while not consumer.assignment():
            consumer.poll(0.1)
        producer = Producer(kafka.producer_config(**{"linger.ms": 0}))
        # Round trips before the clock starts: on a fresh broker an idempotent producer
        # waits seconds for its producer id (the coordinator loads), and the consumer's
        # position ("latest") is set by its first fetch; a probe sent before is skipped.
        deadline = time.monotonic() + 60
        while not any(m.error() is None and m.value() == b"probe"
                      for m in kafka.consume_available(consumer, 100, 0.5)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no round trip through {topic} within 60 s")
            producer.produce(topic, b"probe")
            producer.flush(10)
        broker = self.broker_pid()
        assert broker is not None
        cpu0, rss_max = proc_cpu_s(broker), proc_rss_kib(broker)
        t0 = time.monotonic()
        latencies: list[float] = []
        warmup = 500  # the first fetches after a group join are slow: not the floor
        n = self.args.floor_messages + warmup
        interval = 1.0 / self.args.floor_rate
        next_at = time.monotonic()
        sent = 0
        while len(latencies) < n:
            now = time.monotonic()
            if sent < n and now >= next_at:
                producer.produce(topic, str(time.monotonic()).encode())
                producer.poll(0)
                sent += 1
                next_at += interval
            for m in kafka.consume_available(consumer, 100, 0.001):
                if m.error() is None and m.value() != b"probe":
                    latencies.append((time.monotonic() - float(m.value())) * 1000)
        producer.flush(10)
        broker_cpu_pct = 100 * (proc_cpu_s(broker) - cpu0) / (time.monotonic() - t0)
        rss_max = max(rss_max, proc_rss_kib(broker))
        consumer.close()
        latencies = latencies[warmup:]
        return {"messages": len(latencies), "offered_per_s": self.args.floor_rate,
                "p50_ms": round(percentile(latencies, 50), 2), "p99_ms": round(percentile(latencies, 99), 2),
                "max_ms": round(max(latencies), 2), "kafka_cpu_pct": round(broker_cpu_pct, 1),
                "kafka_rss_mib": round(rss_max / 1024)}

    def broker_idle(self) -> dict[str, Any]:
        """The broker alone, on a node of its own (bench.broker_idle)."""
        a = self.args
        return broker_idle.measure(a.idle_port, a.idle_consumers, a.idle_seconds)

    def start_baseline(self) -> tuple[Process, str]:
        from gochat_project.ops import services

        port = GATEWAY_PORTS["tgw2"] + 28  # clear of the gateway and metrics ports
        p = Process("baseline", [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0",
                                 "bench.baseline:application"],
                    env={"DJANGO_SETTINGS_MODULE": "bench.baseline", "BASELINE_REDIS_URL": "redis://127.0.0.1:6379/10"})
        p.start()
        wait_until(lambda: services.port_open(f"127.0.0.1:{port}"), 30, "baseline up")
        assert p.proc is not None
        self.baseline_pids = {"baseline": p.proc.pid}
        return p, f"ws://127.0.0.1:{port}/ws"


class Sampler(threading.Thread):
    """CPU time and RSS of the server processes every `interval` seconds, so that a
    window's CPU is taken over its sending phase only (not the warm-up or the drain)."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float], dict[str, int]]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            t, cpu, rss = time.monotonic(), {}, {}
            for name, pid in self.pids.items():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    cpu[name], rss[name] = proc_cpu_s(pid), proc_rss_kib(pid)
            self.samples.append((t, cpu, rss))
            self.done.wait(self.interval)

    def stop(self) -> None:
        self.done.set()
        self.join()

    def between(self, t0: float, t1: float) -> tuple[dict[str, float], dict[str, int]]:
        """({name: CPU % of a core}, {name: peak RSS MiB}) over the samples within [t0, t1]."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return {}, {}
        (ta, cpu_a, _), (tb, cpu_b, _) = inside[0], inside[-1]
        pct = {n: round(100 * (cpu_b[n] - cpu_a[n]) / (tb - ta), 1) for n in cpu_b if n in cpu_a}
        rss = {n: round(max(s[2].get(n, 0) for s in inside) / 1024) for n in self.pids}
        return pct, rss


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on a loopback TCP port (ss -ltnp)."""
    done = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    for part in done.stdout.split("pid=")[1:]:
        return int(part.split(",", 1)[0])
    return None


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def machine() -> dict[str, Any]:
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "cpu": model,
            "python": sys.version.split()[0], "gateway_server": "daphne"}


SCENARIOS = ["broker-idle", "kafka-floor", "throughput", "latency", "baseline", "connections", "large-group",
             "index-lag"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help=f"which to run: all (default) or of {', '.join(SCENARIOS)}")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="load-generator processes")
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60.0, help="throughput window (s)")
    parser.add_argument("--baseline-duration", type=float, default=10.0, help="baseline throughput window (s)")
    parser.add_argument("--window", type=int, default=4, help="unacked sends per sender (throughput)")
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 500, 1000, 2000],
                        help="latency: total offered msg/s, a fresh stack each")
    parser.add_argument("--latency-pairs", type=int, default=500)
    parser.add_argument("--index-lag-rate", type=int, default=500, help="index-lag: total offered msg/s")
    parser.add_argument("--latency-duration", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--group-size", type=int, default=100000)
    parser.add_argument("--online", type=int, default=5000)
    parser.add_argument("--group-sends", type=int, default=10)
    parser.add_argument("--floor-messages", type=int, default=5000)
    parser.add_argument("--floor-rate", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="broker-idle: each measurement (s)")
    parser.add_argument("--idle-consumers", type=int, default=5, help="broker-idle: idle consumers")
    parser.add_argument("--idle-port", type=int, default=19500 + PORT_OFFSET, help="broker-idle: the node's port")
    parser.add_argument("--broker-warmup", type=float, default=45.0,
                        help="seconds of produce/consume traffic through a newly started broker before any figure")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--table", metavar="JSON", help="only print the table of earlier result files, merged")
    args = parser.parse_args()
    if args.table:
        merged: dict[str, Any] = {"scenarios": {}}
        for path in args.table.split(","):
            merged["scenarios"].update(json.loads(Path(path).read_text())["scenarios"])
        for scenario in merged["scenarios"].values():
            scenario.pop("scenario_s", None)  # older result files kept it inside the scenario
            if isinstance(scenario.get("latency"), dict):
                scenario["latency"].pop("scenario_s", None)
        print_table(merged)
        return
    unknown = set(args.scenarios) - {"all", *SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    chosen = SCENARIOS if not args.scenarios or "all" in args.scenarios else args.scenarios
    raise_fd_limit()
    bench = Bench(args)
    started = time.monotonic()
    # SIGTERM (timeout, kill) must still stop the stack: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for name in chosen:
        progress(f"== {name}")
        t = time.monotonic()
        # A fresh stack (topics, groups, Redis, database) per scenario keeps the scenarios
        # independent; the broker's JVM stays, warm. The broker floor and the baseline do
        # not use GoChat's processes: not started. The idle broker runs on a node of its
        # own, with no stack at all.
        try:
            if name != "broker-idle":
                bench.start_stack(gochat=name not in ("kafka-floor", "baseline"))
            result = run_scenario(bench, name)
        except BaseException:
            bench.close()
            raise
        finally:
            bench.stop_stack()
        bench.results["scenario_seconds"][name] = round(time.monotonic() - t, 1)
        bench.results["scenarios"][name] = result
        progress(json.dumps(result, default=str)[:2000])
    bench.close()
    bench.results["total_s"] = round(time.monotonic() - started, 1)
    Path(args.out).mkdir(exist_ok=True)
    path = Path(args.out) / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(bench.results, indent=2, default=str))
    print_table(bench.results)
    print(f"\nwritten to {path}")


def run_scenario(bench: Bench, name: str) -> dict[str, Any]:
    if name == "broker-idle":
        return bench.broker_idle()
    if name == "kafka-floor":
        return bench.kafka_floor()
    if name == "throughput":
        return bench.throughput()
    if name == "latency":
        return bench.latency()
    if name == "baseline":
        proc, url = bench.start_baseline()
        try:
            return {"throughput": bench.throughput(baseline=True, baseline_url=url),
                    "latency": bench.latency(baseline=True, baseline_url=url)}
        finally:
            proc.stop()
    if name == "connections":
        return bench.connections()
    if name == "index-lag":
        return bench.index_lag()
    return bench.large_group()


def print_table(results: dict[str, Any]) -> None:
    s = results["scenarios"]
    rows = []
    if "broker-idle" in s:
        b = s["broker-idle"]
        rows.append(("kafka idle, no clients: CPU % of a core / RSS MiB",
                     f"{b['idle']['cpu_pct']} / {b['idle']['rss_mib']}"))
        c = b["with_consumers"]
        rows.append((f"kafka, {b['consumers']} idle consumers (fetch.wait.max.ms={b['fetch_wait_max_ms']}): "
                     "CPU % / RSS MiB / fetches/s", f"{c['cpu_pct']} / {c['rss_mib']} / {c['fetch_requests_per_s']}"))
    if "throughput" in s:
        rows.append(("1:1 delivered msg/s (min/med/max)", fmt(s["throughput"]["delivered_per_s"])))
        rows.append(("1:1 lost / seq gaps (all runs)", f"{sum(r['lost'] for r in s['throughput']['runs'])} / "
                     f"{sum(r['persistence']['gaps'] for r in s['throughput']['runs'])}"))
        if cpu := kafka_cpu(s["throughput"]["runs"]):
            rows.append(("1:1 kafka CPU % of a core (share of server CPU)", cpu))
    if "baseline" in s:
        rows.append(("baseline delivered msg/s", fmt(s["baseline"]["throughput"]["delivered_per_s"])))
        rows.append(("baseline lost (acked, never delivered)",
                     str(sum(r["lost"] for r in s["baseline"]["throughput"]["runs"]))))
        if "throughput" in s:
            ratio = s["throughput"]["delivered_per_s"]["median"] / max(
                1, s["baseline"]["throughput"]["delivered_per_s"]["median"])
            rows.append(("throughput GoChat / baseline", f"{ratio:.2f}x"))
    if "latency" in s:
        for rate, v in s["latency"].items():
            rows.append((f"latency @{rate}/s p50 / p99 ms", f"{fmt(v['p50_ms'])} / {fmt(v['p99_ms'])}"))
            rows.append((f"latency @{rate}/s delivered / sent (all windows)",
                         f"{sum(r['delivered'] for r in v['runs'])} / {sum(r['sent'] for r in v['runs'])}"))
            if cpu := kafka_cpu(v["runs"]):
                rows.append((f"latency @{rate}/s kafka CPU % of a core (share of server CPU)", cpu))
    if "baseline" in s:
        for rate, v in s["baseline"]["latency"].items():
            rows.append((f"baseline @{rate}/s p50 / p99 ms", f"{fmt(v['p50_ms'])} / {fmt(v['p99_ms'])}"))
    if "kafka-floor" in s:
        k = s["kafka-floor"]
        rows.append((f"kafka produce->consume @{k['offered_per_s']}/s p50 / p99 ms", f"{k['p50_ms']} / {k['p99_ms']}"))
        if "kafka_cpu_pct" in k:
            rows.append((f"kafka produce->consume @{k['offered_per_s']}/s: CPU % / RSS MiB",
                         f"{k['kafka_cpu_pct']} / {k['kafka_rss_mib']}"))
    if "connections" in s:
        c = s["connections"]
        rows.append(("idle connections on one gateway", f"{c['connections']} ({c['failed']} failed)"))
        rows.append(("gateway RSS per connection KiB", str(c["rss_per_connection_kib"])))
        rows.append(("time to connect all s", str(c["connect_s"])))
    if "large-group" in s:
        g = s["large-group"]
        rows.append((f"{g['members']}-member group, {g['online']} online: send -> last ms",
                     str(g["single_send_last_ms"])))
        rows.append((f"{g['sends']} sends back to back -> last ms", str(g["burst_last_delivery_ms"])))
        if g.get("reaction_last_ms") is not None:  # result files before 2026-12-07 have none
            rows.append(("a reaction there -> last online member ms (received by)",
                         f"{g['reaction_last_ms']} ({g['reaction_received_by']})"))
    if "index-lag" in s:
        x = s["index-lag"]
        for name in ("searchable", "stored"):
            y = x[name]
            rows.append((f"send -> {name} @{x['offered_per_s']}/s p50 / p95 / max ms",
                         f"{y['p50_ms']} / {y['p95_ms']} / {y['max_ms']} ({y['rows']} rows, {y['missed']} missed)"))
    width = max(len(r[0]) for r in rows) if rows else 10
    print("\n" + "\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def fmt(v: dict[str, float]) -> str:
    return f"{v['min']} / {v['median']} / {v['max']}"


def kafka_cpu(runs: list[dict[str, Any]]) -> str | None:
    """The broker's CPU over the runs' sending phases: min / median / max % of a core, and
    its median share of all server processes' CPU (GoChat's, Kafka, MariaDB, Redis)."""
    pcts = [r["server_cpu_pct"] for r in runs if "kafka" in r.get("server_cpu_pct", {})]
    if not pcts:
        return None
    share = statistics.median(100 * p["kafka"] / max(0.1, sum(p.values())) for p in pcts)
    return f"{fmt(spread([p['kafka'] for p in pcts]))} ({share:.0f} %)"


if __name__ == "__main__":
    main()
