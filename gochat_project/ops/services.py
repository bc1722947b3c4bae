"""Bring up what GoChat stands on, idempotently: MariaDB and Redis (installed from
Debian's packages and started when the configured loopback server is not running),
the MySQL database, the embedded Apache Kafka broker and the topics. A server that answers
at the configured address is used as is. What cannot be brought up is reported in
one line naming the service and how to start it."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from gochat_project.infra import kafka
from gochat_project.ops import kafka_broker

RUN_DIR = settings.BASE_DIR / ".run"

HOW_TO_START = {
    "mysql": "point GOCHAT_DATABASE_URL at a running server, or at 127.0.0.1 to let `services up` start MariaDB",
    "redis": "point GOCHAT_REDIS_URL at a running server, or at 127.0.0.1 to let `services up` start Redis",
    "kafka": "unset GOCHAT_KAFKA_BOOTSTRAP to use the embedded broker, or check your Kafka cluster",
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


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Debian's server packages; their postinst initialises MariaDB's system data directory.
MARIADB_SERVER = "/usr/sbin/mariadbd"
REDIS_SERVER = "/usr/bin/redis-server"


def debian_installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return done.stdout.endswith("ok installed")


def apt_install(*packages: str) -> None:
    """Install Debian packages that are missing (the package index is refreshed only if
    the install fails, as on a new machine)."""
    packages = tuple(p for p in packages if not debian_installed(p))
    if not packages:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", *packages]
    if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
        return
    subprocess.run(["apt-get", "update"], env=env, capture_output=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get install {' '.join(packages)} failed: {done.stderr.strip()[-500:]}")


def _wait_port(address: str, what: str, seconds: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not port_open(address):
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise ServiceUnavailable(what, f"started, but nothing listens on {address}; see {RUN_DIR}/{what}.log")
        time.sleep(0.1)


def _mysql_connect(db: dict[str, Any]) -> Any:
    import MySQLdb

    return MySQLdb.connect(host=db["HOST"] or "127.0.0.1", port=int(db["PORT"] or 3306), user=db["USER"],
                           password=db["PASSWORD"] or "", charset="utf8mb4", connect_timeout=3)


def mariadb_start(db: dict[str, Any]) -> None:
    """Install (Debian's mariadb-server) and start MariaDB on the configured loopback port,
    with the system data directory. Debian's root logs in by unix socket only: when the
    configured user is a password-less root, let it in over TCP as well (a development box)."""
    apt_install("mariadb-server")
    port = int(db["PORT"] or 3306)
    Path("/run/mysqld").mkdir(exist_ok=True)
    shutil.chown("/run/mysqld", user="mysql")
    RUN_DIR.mkdir(exist_ok=True)
    with open(RUN_DIR / "mysql.log", "ab") as log:
        proc = subprocess.Popen([MARIADB_SERVER, "--user=mysql", f"--port={port}", "--bind-address=127.0.0.1"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_port(f"127.0.0.1:{port}", "mysql", 60, proc)
    if db["USER"] == "root" and not db["PASSWORD"]:
        subprocess.run(["mariadb", "-uroot", "-e", "ALTER USER root@localhost IDENTIFIED VIA unix_socket "
                        "OR mysql_native_password USING PASSWORD('')"], capture_output=True)


def ensure_database() -> None:
    import MySQLdb

    db = settings.DATABASES["default"]
    try:
        conn = _mysql_connect(db)
    except MySQLdb.OperationalError as exc:
        if (db["HOST"] or "127.0.0.1") not in LOOPBACK or port_open(f"127.0.0.1:{db['PORT'] or 3306}"):
            raise ServiceUnavailable("mysql", str(exc.args[-1])) from exc
        mariadb_start(db)
        try:
            conn = _mysql_connect(db)
        except MySQLdb.OperationalError as exc2:
            raise ServiceUnavailable("mysql", str(exc2.args[-1])) from exc2
    if (db["HOST"] or "127.0.0.1") in LOOPBACK:
        mroonga_install(conn)
    with conn.cursor() as cursor:
        name = db["NAME"].replace("`", "")
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def mroonga_install(conn: Any) -> None:
    """Message search's engine (messaging/search.py) on a local server: Debian's package,
    when the server's plugin directory lacks its library. The migration loads it."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT @@plugin_dir")
        plugin_dir = cursor.fetchone()[0]
    if not (Path(plugin_dir) / "ha_mroonga.so").exists():
        apt_install("mariadb-plugin-mroonga")


def redis_start(host: str, port: int) -> None:
    """Install (Debian's redis-server) and start Redis on the loopback port, its data in
    .run/redis (append-only, fsync each second: sequence counters survive a restart)."""
    apt_install("redis-server")
    data = RUN_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run([REDIS_SERVER, "--daemonize", "yes", "--bind", host, "--port", str(port), "--dir", str(data),
                    "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                    "--logfile", str(RUN_DIR / "redis.log"), "--pidfile", str(RUN_DIR / f"redis-{port}.pid")],
                   check=True, capture_output=True)
    _wait_port(f"{host}:{port}", "redis", 30)


REDIS_CLUSTER_NODES = 3  # the local cluster: three masters on consecutive ports, no replicas


def redis_cluster_node_command(host: str, port: int, data: Path) -> list[str]:
    """One node of the local Redis Cluster, in the foreground. Its nodes-{port}.conf (the
    cluster's membership and its slots) lives in `data`, so a node restarted there, even
    with its data gone, takes its slots back. Other nodes keep serving their slots while
    one is down (cluster-require-full-coverage no), and mark it failed after 2 s."""
    return [REDIS_SERVER, "--bind", host, "--port", str(port), "--dir", str(data),
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]


def redis_cluster_create(host: str, ports: list[int], timeout: float = 30) -> bool:
    """Join running cluster-mode nodes into one cluster with every slot assigned, unless
    they already are (True if created). Waits until every node reports the cluster ok."""
    import redis

    nodes = [redis.Redis(host=host, port=p, socket_timeout=5) for p in ports]
    created = False
    if int(nodes[0].cluster("info").get("cluster_slots_assigned", 0)) < 16384:
        subprocess.run(["redis-cli", "--cluster", "create", *(f"{host}:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        created = True
    deadline = time.monotonic() + timeout
    while any(n.cluster("info").get("cluster_state") != "ok" for n in nodes):
        if time.monotonic() > deadline:
            raise ServiceUnavailable("redis", f"cluster on {host}:{ports[0]}.. not ok after {timeout:.0f} s")
        time.sleep(0.2)
    return created


def redis_cluster_start(host: str, first_port: int, count: int = REDIS_CLUSTER_NODES) -> None:
    """Install Redis and start a local cluster of `count` nodes from `first_port` (data in
    .run/redis-cluster/<port>): the nodes not running are started, then joined."""
    apt_install("redis-server")
    ports = list(range(first_port, first_port + count))
    for port in ports:
        if port_open(f"{host}:{port}"):
            continue
        data = RUN_DIR / "redis-cluster" / str(port)
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run([*redis_cluster_node_command(host, port, data), "--daemonize", "yes",
                        "--logfile", str(data / "redis.log"), "--pidfile", str(data / "redis.pid")],
                       check=True, capture_output=True)
    for port in ports:
        _wait_port(f"{host}:{port}", "redis", 30)
    redis_cluster_create(host, ports)


def check_redis() -> None:
    from urllib.parse import urlsplit

    from gochat_project.infra import redis_client

    try:
        redis_client.client().ping()
        return
    except Exception as exc:
        url = urlsplit(settings.GOCHAT_REDIS_URL)
        host, port = url.hostname or "127.0.0.1", url.port or 6379
        if url.scheme != "redis" or host not in LOOPBACK or port_open(f"{host}:{port}"):
            raise ServiceUnavailable("redis", type(exc).__name__) from exc
    if redis_client.cluster_enabled():
        redis_cluster_start(host, port)
    else:
        redis_start(host, port)
    deadline = time.monotonic() + 30
    while True:  # a restarted Redis answers BusyLoadingError while it reads its append-only file
        try:
            redis_client.client().ping()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise ServiceUnavailable("redis", type(exc).__name__) from exc
            time.sleep(0.2)


def embedded_nodes(bootstrap: str | None = None) -> list[kafka_broker.Node]:
    """The embedded KRaft nodes behind a loopback bootstrap list of consecutive ports
    (one address: a single node, as `make run` uses; three: the fault tests' cluster)."""
    addresses = [a.strip() for a in (bootstrap or settings.KAFKA_BOOTSTRAP).split(",") if a.strip()]
    ports = [_host_port(a)[1] for a in addresses]
    consecutive = ports == list(range(ports[0], ports[0] + len(ports)))
    if any(_host_port(a)[0] not in LOOPBACK for a in addresses) or not consecutive:
        raise ServiceUnavailable("kafka", f"the embedded broker runs on consecutive loopback ports, not {bootstrap}")
    return kafka_broker.cluster(ports[0], len(ports))


def broker_start(bootstrap: str | None = None) -> bool:
    """Install and start the embedded broker(s) unless they are running. True if started."""
    try:
        return kafka_broker.start(embedded_nodes(bootstrap))
    except kafka_broker.BrokerError as exc:
        raise ServiceUnavailable("kafka", str(exc)) from exc


def broker_stop(bootstrap: str | None = None) -> bool:
    return kafka_broker.stop(embedded_nodes(bootstrap))


def ensure_topics(partitions: dict[str, int] | None = None) -> dict[str, int]:
    """Create missing topics; returns {topic: partitions} as they now are."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    wanted = partitions or kafka.all_topics()
    admin = AdminClient(kafka.common_config())
    try:
        existing = admin.list_topics(timeout=5).topics
    except KafkaException as exc:
        raise ServiceUnavailable("kafka", str(exc)) from exc
    replication = settings.GOCHAT_KAFKA_REPLICATION_FACTOR
    missing = [NewTopic(t, num_partitions=n, replication_factor=replication)
               for t, n in wanted.items() if t not in existing]
    if missing and settings.GOCHAT_KAFKA_CREATE_TOPICS:
        for future in admin.create_topics(missing, operation_timeout=10).values():
            try:
                future.result()
            except KafkaException as exc:
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    # A created topic shows in the metadata a moment after CreateTopics has answered.
    deadline = time.monotonic() + (10 if missing and settings.GOCHAT_KAFKA_CREATE_TOPICS else 0)
    while True:
        meta = admin.list_topics(timeout=5).topics
        found = {t: len(meta[t].partitions) for t in wanted if t in meta and meta[t].partitions}
        if len(found) == len(wanted) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def services_up() -> list[str]:
    """Everything GoChat needs, in order. Returns a line per step for the operator."""
    lines = []
    ensure_database()
    lines.append(f"mysql ok: database {settings.DATABASES['default']['NAME']}")
    check_redis()
    lines.append("redis ok")
    if settings.GOCHAT_KAFKA_EMBEDDED:
        started = broker_start()
        lines.append(f"kafka: embedded Apache Kafka {'started' if started else 'already running'} on "
                     f"{settings.KAFKA_BOOTSTRAP} (data in .run/kafka)")
    topics = ensure_topics()
    lines.append("topics: " + ", ".join(f"{t}({n})" for t, n in topics.items()))
    if len(topics) < len(kafka.all_topics()):
        missing = sorted(set(kafka.all_topics()) - set(topics))
        why = "create them, or set GOCHAT_KAFKA_CREATE_TOPICS=1" if not settings.GOCHAT_KAFKA_CREATE_TOPICS else \
            "created, but not in the cluster's metadata within 10 s"
        raise ServiceUnavailable("kafka", f"topics missing ({why}): {', '.join(missing)}")
    return lines
