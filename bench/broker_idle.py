"""What idle consumers cost the bundled broker: CPU of a fresh Tansu while N consumers
poll empty topics, for several fetch.wait.max.ms (docs/benchmarks.md).

    python -m bench.broker_idle [--port 19500] [--seconds 8]
"""

import argparse
import json
import subprocess
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.procfs import proc_cpu_s
from gochat_project.services import broker_command


def measure(port: int, consumers: int, wait_ms: int, partitions: int, seconds: float) -> tuple[float, float]:
    """Broker CPU (% of a core) and fetch requests a second."""
    bootstrap = f"127.0.0.1:{port}"
    broker = subprocess.Popen(broker_command(bootstrap), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fetches: dict[str, int] = {}

    def stats(raw: str) -> None:
        report = json.loads(raw)
        fetches[report["name"]] = sum(b.get("req", {}).get("Fetch", 0) for b in report["brokers"].values()
                                      if b.get("nodeid", -1) >= 0)

    clients = []
    try:
        time.sleep(1)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(f"t{i}", partitions, 1) for i in range(consumers)]).values():
            future.result()
        for i in range(consumers):
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g{i}", "session.timeout.ms": 6000,
                          "heartbeat.interval.ms": 500, "fetch.wait.max.ms": wait_ms,
                          "statistics.interval.ms": 1000, "stats_cb": stats})
            c.subscribe([f"t{i}"])
            clients.append(c)

        def poll_for(s: float) -> None:
            end = time.monotonic() + s
            while time.monotonic() < end:
                for c in clients:
                    c.poll(0.01)

        poll_for(6)  # group joins
        cpu0, t0, f0 = proc_cpu_s(broker.pid), time.monotonic(), sum(fetches.values())
        poll_for(seconds)
        elapsed = time.monotonic() - t0
        return 100 * (proc_cpu_s(broker.pid) - cpu0) / elapsed, (sum(fetches.values()) - f0) / elapsed
    finally:
        for c in clients:
            c.close()
        broker.kill()
        broker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=19500)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    for consumers, wait_ms, partitions in [(1, 10, 4), (5, 10, 4), (5, 10, 1), (5, 100, 4), (5, 500, 4)]:
        cpu, rate = measure(args.port, consumers, wait_ms, partitions, args.seconds)
        print(f"{consumers} consumers, {partitions} partitions each, fetch.wait.max.ms={wait_ms}: "
              f"broker {cpu:.1f} % of a core, {rate:.0f} fetch requests/s")


if __name__ == "__main__":
    main()
