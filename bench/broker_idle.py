"""The embedded Kafka broker's idle cost: CPU (% of one core) and RSS of a fresh
single KRaft node (gochat_project.ops.kafka_broker, on an empty log directory) with no
clients, then with N idle consumers built from GoChat's consumer settings
(gochat_project.infra.kafka.consumer_config, fetch.wait.max.ms as configured there), each
in a group of its own, polling an empty topic.

    python -m bench.broker_idle [--port 19500] [--seconds 30] [--consumers 5]

`python -m bench broker-idle` runs the same measurement (part of `python -m bench all`).
"""

import argparse
import json
import os
import shutil
import time
from typing import Any

SETTLE_S = 10.0  # after start: the JVM's JIT and the controller's first work are done


def measure(port: int = 19500, consumers: int = 5, seconds: float = 30.0, partitions: int | None = None,
            settle: float = SETTLE_S) -> dict[str, Any]:
    from confluent_kafka import Consumer
    from django.conf import settings

    from bench.procfs import proc_cpu_s, proc_rss_kib
    from gochat_project.infra import kafka
    from gochat_project.ops import kafka_broker, services

    partitions = partitions or settings.GOCHAT_UPSTREAM_PARTITIONS
    [node] = kafka_broker.cluster(port, 1)
    if services.port_open(node.address):
        raise RuntimeError(f"{node.address} is taken (a stale run?); stop it first (pid file {node.pid_file})")
    shutil.rmtree(node.directory, ignore_errors=True)  # a fresh, empty log directory
    clients: list[Any] = []
    fetches: dict[str, int] = {}

    def stats(raw: str) -> None:
        report = json.loads(raw)
        fetches[report["name"]] = sum(b.get("req", {}).get("Fetch", 0) for b in report["brokers"].values()
                                      if b.get("nodeid", -1) >= 0)

    def poll_for(s: float) -> None:
        end = time.monotonic() + s
        while time.monotonic() < end:
            if not clients:
                time.sleep(min(0.1, max(0.0, end - time.monotonic())))
            for c in clients:
                c.poll(0.01)

    def sample(pid: int, s: float) -> dict[str, Any]:
        cpu0, t0, f0 = proc_cpu_s(pid), time.monotonic(), sum(fetches.values())
        poll_for(s)
        elapsed = time.monotonic() - t0
        out = {"cpu_pct": round(100 * (proc_cpu_s(pid) - cpu0) / elapsed, 1),
               "rss_mib": round(proc_rss_kib(pid) / 1024)}
        if clients:
            out["fetch_requests_per_s"] = round((sum(fetches.values()) - f0) / elapsed)
        return out

    try:
        kafka_broker.start([node])
        pid = int(node.pid_file.read_text())
        time.sleep(settle)
        idle = sample(pid, seconds)
        topics = [f"gochat_idle.t{i}" for i in range(consumers)]
        create_topics(node.address, topics, partitions)
        config: dict[str, Any] = {}
        for i, t in enumerate(topics):
            config = kafka.consumer_config(f"gochat_idle.g{i}", **{"bootstrap.servers": node.address,
                                                                  "statistics.interval.ms": 1000,
                                                                  "stats_cb": stats})
            c = Consumer(config)
            c.subscribe([t])
            clients.append(c)
        deadline = time.monotonic() + 60
        while not all(c.assignment() for c in clients):  # the groups' joins
            if time.monotonic() > deadline:
                raise RuntimeError("idle consumers were not assigned their partitions within 60 s")
            poll_for(0.2)
        poll_for(3)  # the first fetches and offset look-ups
        with_consumers = sample(pid, seconds)
        return {"seconds": seconds, "consumers": consumers, "partitions": partitions,
                "fetch_wait_max_ms": config.get("fetch.wait.max.ms"), "heap": settings.GOCHAT_KAFKA_HEAP,
                "idle": idle, "with_consumers": with_consumers}
    finally:
        for c in clients:
            c.close()
        kafka_broker.stop([node])


def create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """In a function of its own: the admin client is gone (no client of the broker left
    but the consumers) when it returns."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        future.result()


def report(result: dict[str, Any]) -> str:
    idle, busy = result["idle"], result["with_consumers"]
    return (f"kafka broker (heap {result['heap']}), no clients: {idle['cpu_pct']} % of a core, "
            f"RSS {idle['rss_mib']} MiB\n"
            f"kafka broker, {result['consumers']} idle consumers ({result['partitions']} partition(s) each, "
            f"fetch.wait.max.ms={result['fetch_wait_max_ms']}): {busy['cpu_pct']} % of a core, "
            f"RSS {busy['rss_mib']} MiB, {busy['fetch_requests_per_s']} fetch requests/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=19500)
    parser.add_argument("--seconds", type=float, default=30.0, help="each measurement (s)")
    parser.add_argument("--consumers", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=None, help="of each topic (default: GoChat's upstream)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gochat_project.settings")
    import django

    django.setup()
    print(report(measure(args.port, args.consumers, args.seconds, args.partitions)))


if __name__ == "__main__":
    main()
