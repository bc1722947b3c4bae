"""The embedded Apache Kafka: KRaft brokers that run from jars Maven resolves from
Maven Central (kafka/pom.xml), each node acting as broker and controller.

One node by default (`manage.py services up` when GOCHAT_KAFKA_BOOTSTRAP is unset);
three on loopback for the fault tests (chaos/), so that one can be killed. Everything
a node keeps lives under its own directory: server.properties, the formatted log
directory and its log file. Kafka's shell scripts are not in the jars: the command
lines are here.
"""

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

POM = settings.BASE_DIR / "kafka" / "pom.xml"
LOG4J_CONFIG = settings.BASE_DIR / "kafka" / "log4j2.xml"
LIBS = Path(settings.GOCHAT_KAFKA_LIBS)


class BrokerError(Exception):
    """The embedded broker cannot be installed or started; the message says why and what to do."""


@dataclass(frozen=True)
class Node:
    """One KRaft node: clients connect to `port`, the controllers talk on `controller_port`."""

    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"


def cluster(base_port: int, size: int = 1, root: Path | None = None) -> list[Node]:
    """`size` nodes on consecutive ports from base_port; controllers 1,000 ports above."""
    root = root or settings.BASE_DIR / ".run" / "kafka"
    return [Node(i + 1, base_port + i, base_port + 1000 + i, root / f"node-{base_port + i}") for i in range(size)]


def bootstrap(nodes: list[Node]) -> str:
    return ",".join(n.address for n in nodes)


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise BrokerError(f"`{program}` not found: the embedded Kafka broker needs {package} "
                          f"(apt-get install {package}), or set GOCHAT_KAFKA_BOOTSTRAP to an existing cluster")
    return path


def install() -> None:
    """Resolve the broker's jars into .run/kafka/libs, once per version of kafka/pom.xml."""
    java = _require("java", "openjdk-17-jre-headless")
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = re.search(r'version "(1\.)?(\d+)', version)
    if major is None or int(major.group(2)) < 17:
        raise BrokerError(f"Kafka 4 needs Java 17 or newer; `java -version` says: {version.strip()[:200]}")
    stamp = LIBS / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    mvn = _require("mvn", "maven")
    shutil.rmtree(LIBS, ignore_errors=True)
    done = subprocess.run([mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
                           f"-DoutputDirectory={LIBS}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(f"Maven could not resolve the broker's jars ({POM}):\n{(done.stdout + done.stderr)[-2000:]}")
    stamp.write_text(digest)


def server_properties(node: Node, nodes: list[Node]) -> str:
    """The node's configuration. Retention is bounded by time and size, so a broker left
    running for weeks keeps a flat disk: GoChat's topics carry work in flight, MySQL keeps
    the messages."""
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    replicas = min(3, len(nodes))
    lines = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": node.data_dir,
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "min.insync.replicas": min(2, replicas),
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min(2, replicas),
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min(2, replicas),
        # A consumer group's first member starts at once instead of waiting 3 s for others.
        "group.initial.rebalance.delay.ms": 0,
        "log.retention.hours": settings.GOCHAT_KAFKA_RETENTION_HOURS,
        "log.retention.bytes": settings.GOCHAT_KAFKA_RETENTION_BYTES,
        "log.segment.bytes": min(settings.GOCHAT_KAFKA_RETENTION_BYTES, 64 * 1024 * 1024),
        "log.retention.check.interval.ms": 60000,
        # A dead node is fenced, and its partitions led by a survivor, 3 s after its last
        # heartbeat (Kafka's defaults: 9 s, heartbeats every 2 s): the ack pause of a broker
        # kill (docs/reliability.md). A replica that lags is dropped from the ISR after 10 s.
        "broker.heartbeat.interval.ms": 500,
        "broker.session.timeout.ms": 3000,
        "replica.lag.time.max.ms": 10000,
        # When the node killed is also the active controller, the survivors elect another
        # within about a second (defaults 2 s / 1 s): measured 1 s off that ack pause.
        "controller.quorum.fetch.timeout.ms": 1000,
        "controller.quorum.election.timeout.ms": 500,
        "unclean.leader.election.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def format_storage(node: Node, nodes: list[Node], cluster_id: str) -> None:
    """Write the node's properties and, the first time, format its log directory."""
    node.directory.mkdir(parents=True, exist_ok=True)
    config = node.directory / "server.properties"
    config.write_text(server_properties(node, nodes))
    if (node.data_dir / "meta.properties").exists():
        return
    done = subprocess.run([*_java(node, heap="256m"), "kafka.tools.StorageTool", "format", "--ignore-formatted",
                           "-t", cluster_id, "-c", str(config)], capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(f"formatting {node.data_dir} failed: {(done.stdout + done.stderr)[-2000:]}")


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _java(node: Node, heap: str) -> list[str]:
    # AlwaysPreTouch: the heap is resident from the start, so RSS is flat from the first
    # minute (without it a broker's RSS grew 28-37 % over a 2-minute soak as it filled its heap).
    return [shutil.which("java") or "java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+AlwaysPreTouch",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={node.directory}",
            "-cp", f"{LIBS}/*"]


def command(node: Node) -> list[str]:
    """The command line of a formatted node (for a supervisor that restarts it)."""
    return [*_java(node, settings.GOCHAT_KAFKA_HEAP), "kafka.Kafka", str(node.directory / "server.properties")]


def prepare(nodes: list[Node]) -> None:
    """Install the jars and format every node (kept: a restart reuses the data)."""
    install()
    id_file = nodes[0].directory.parent / f"cluster-{nodes[0].port}.id"
    id_file.parent.mkdir(parents=True, exist_ok=True)
    if not id_file.exists():
        id_file.write_text(new_cluster_id())
    for node in nodes:
        format_storage(node, nodes, id_file.read_text().strip())


def start(nodes: list[Node], timeout: float = 90) -> bool:
    """Start the nodes that are not running; wait until every one accepts clients.
    True if any was started."""
    from gochat_project.ops.services import port_open  # services imports this module

    prepare(nodes)
    started = []
    for node in nodes:
        if port_open(node.address):
            continue
        with open(node.log_file, "ab") as log:
            proc = subprocess.Popen(command(node), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        node.pid_file.write_text(str(proc.pid))
        started.append((node, proc))
    deadline = time.monotonic() + timeout
    for node, proc in started:
        while not port_open(node.address):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"Kafka node {node.node_id} did not start on {node.address}; see {node.log_file}")
            time.sleep(0.1)
    wait_registered(nodes, deadline - time.monotonic())
    return bool(started)


def wait_registered(nodes: list[Node], timeout: float) -> None:
    """Wait until the cluster's metadata lists every node: a node listens a moment before
    it has registered, and a topic of replication factor 3 cannot be made until all have."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    deadline = time.monotonic() + max(timeout, 1)
    while True:
        try:
            if len(admin.list_topics(timeout=2).brokers) >= len(nodes):
                return
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise BrokerError(f"Kafka nodes {bootstrap(nodes)} did not all register; see {nodes[0].log_file}")
        time.sleep(0.2)


def stop(nodes: list[Node], timeout: float = 30) -> bool:
    """Stop the nodes this module started (SIGTERM: a controlled shutdown), kill -9 after timeout."""
    pids = []
    for node in nodes:
        if node.pid_file.exists():
            pids.append(int(node.pid_file.read_text()))
            node.pid_file.unlink()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return bool(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of this process that exited stays a zombie until reaped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
