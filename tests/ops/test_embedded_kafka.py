"""The embedded Apache Kafka broker (gochat_project/ops/kafka_broker.py) on a node of its
own: its durability across kill -9, its configuration, and the error `services up`
gives on a machine without Java. Real broker processes; nothing is mocked."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import ROOT, VENV_BIN

# Beside the test run's own broker (GOCHAT_KAFKA_BOOTSTRAP), on ports of its own.
PORT = int(os.environ.get("GOCHAT_TEST_PORT_BASE", "18000")) + 1600


@pytest.fixture
def node() -> Iterator[object]:
    from gochat_project.ops import kafka_broker

    root = ROOT / ".run" / f"kafka-durability-{PORT}"
    shutil.rmtree(root, ignore_errors=True)
    [node] = kafka_broker.cluster(PORT, 1, root)
    kafka_broker.start([node])
    yield node
    kafka_broker.stop([node])
    shutil.rmtree(root, ignore_errors=True)


def test_kill_9_of_the_broker_and_a_restart_on_its_data_lose_no_acknowledged_record(node) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from gochat_project.infra import kafka
    from gochat_project.ops import kafka_broker

    topic = f"durability-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": node.address})  # kept until its future resolves
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(15)
    acked: set[bytes] = set()

    def delivered(err: object, msg: object) -> None:
        if err is None:
            acked.add(msg.value())  # type: ignore[attr-defined]

    # GoChat's producer settings (acks=all, idempotent), with time to outlast the restart.
    producer = Producer(kafka.producer_config(**{"bootstrap.servers": node.address, "message.timeout.ms": 60000,
                                                 "on_delivery": delivered}))
    stop = threading.Event()
    sent = 0

    def produce() -> None:
        nonlocal sent
        while not stop.is_set():
            producer.produce(topic, key=str(sent % 7).encode(), value=f"r{sent}".encode())
            sent += 1
            producer.poll(0)
            time.sleep(0.0005)

    writer = threading.Thread(target=produce)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 2000 and time.monotonic() < deadline:
            producer.poll(0.05)
        acked_before_kill = set(acked)
        assert len(acked_before_kill) >= 2000
        os.kill(int(node.pid_file.read_text()), signal.SIGKILL)
        time.sleep(1)
        kafka_broker.start([node])  # same data directory: the log is recovered, not formatted
        time.sleep(1)
    finally:
        stop.set()
        writer.join()
    assert producer.flush(60) == 0, "records still unacknowledged a minute after the restart"

    consumer = Consumer(kafka.consumer_config(f"check-{topic}", **{"bootstrap.servers": node.address,
                                                                   "enable.partition.eof": True}))
    consumer.subscribe([topic])
    stored: list[bytes] = []
    eof: set[int] = set()
    deadline = time.monotonic() + 60
    while len(eof) < 2 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            eof.add(m.partition())
        else:
            stored.append(m.value())
    consumer.close()
    assert len(eof) == 2, "the topic was not read to its end"
    assert acked_before_kill <= set(stored), f"{len(acked_before_kill - set(stored))} acknowledged records lost"
    assert set(stored) == acked and len(stored) == len(set(stored)) == sent, "lost or duplicated records"


def test_the_broker_keeps_retention_and_replication_settings_a_long_run_needs() -> None:
    from gochat_project.ops import kafka_broker

    nodes = kafka_broker.cluster(30000, 3, Path("/nonexistent"))
    single = dict(line.split("=", 1) for line in kafka_broker.server_properties(nodes[0], nodes[:1]).splitlines())
    triple = dict(line.split("=", 1) for line in kafka_broker.server_properties(nodes[1], nodes).splitlines())
    assert single["process.roles"] == "broker,controller"  # KRaft, no ZooKeeper
    assert int(single["log.retention.hours"]) > 0 and int(single["log.retention.bytes"]) > 0
    assert int(single["log.segment.bytes"]) <= int(single["log.retention.bytes"])
    assert single["offsets.topic.replication.factor"] == single["default.replication.factor"] == "1"
    assert triple["default.replication.factor"] == triple["offsets.topic.replication.factor"] == "3"
    assert triple["min.insync.replicas"] == "2" and triple["unclean.leader.election.enable"] == "false"
    assert triple["controller.quorum.voters"] == "1@127.0.0.1:31000,2@127.0.0.1:31001,3@127.0.0.1:31002"


def test_services_up_without_java_says_what_to_install_and_exits_non_zero(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(VENV_BIN), "GOCHAT_KAFKA_EMBEDDED": "1",
           "GOCHAT_KAFKA_BOOTSTRAP": f"127.0.0.1:{PORT + 1}"}
    out = subprocess.run([sys.executable, "manage.py", "services", "up"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "`java` not found" in out.stderr and "openjdk-17" in out.stderr, out.stderr


def test_services_up_without_maven_says_what_to_install_and_exits_non_zero(tmp_path: Path) -> None:
    """Java is there, the jars are not resolved yet, and Maven is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(shutil.which("java"))
    env = {**os.environ, "PATH": f"{bin_dir}:{VENV_BIN}", "GOCHAT_KAFKA_EMBEDDED": "1",
           "GOCHAT_KAFKA_LIBS": str(tmp_path / "libs"), "GOCHAT_KAFKA_BOOTSTRAP": f"127.0.0.1:{PORT + 1}"}
    out = subprocess.run([sys.executable, "manage.py", "services", "up"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "`mvn` not found" in out.stderr and "apt-get install maven" in out.stderr, out.stderr
