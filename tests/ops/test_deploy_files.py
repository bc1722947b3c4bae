"""deploy/: the systemd units, their environment files and the nginx site, checked as far
as this machine allows. Parsed and held against the code (commands and their arguments,
queue names, the variables settings read, the ports); `systemd-analyze verify` and
`systemd-analyze security --offline` on copies rendered onto this checkout (systemd is
not PID 1 here, so no unit is started: what runs under systemd itself, the sandbox
included, is not exercised); `nginx -t` on the site with a throwaway certificate; and that
nginx, started on loopback ports in front of the live test gateways, passes REST calls,
an upload at the size limit and a WebSocket through."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.sync.client import ClientConnection, connect

from tests.client import PASSWORD
from tests.stack import GATEWAY_PORTS, ROOT, wait_until

DEPLOY = ROOT / "deploy"
INSTALL_ROOT = "/opt/gochat"
SITE = DEPLOY / "nginx" / "gochat.conf"
LONG_RUNNING = ["gochat-gateway@.service", "gochat-logic.service", "gochat-worker@.service"]
ONESHOT = ["gochat-migrate.service", "gochat-cleanup-uploads.service"]
SERVICES = LONG_RUNNING + ONESHOT
# What `systemd-analyze verify` loads: every unit, templates as the instances we ship for.
VERIFIED = ["gochat-gateway@gw1.service", "gochat-worker@persist.service", "gochat-worker@fanout.service",
            "gochat-logic.service", "gochat-migrate.service", "gochat-cleanup-uploads.service",
            "gochat-cleanup-uploads.timer", "gochat.target"]
WORKER_TOPICS = {"persist": "persist_topic", "fanout": "fanout_topic"}  # gochat_project.infra.kafka's functions
# What nginx listens on in the live test: beside the stack's ports (tests/stack.py).
NGINX_HTTP_PORT = GATEWAY_PORTS["tgw1"] + 49
NGINX_HTTPS_PORT = GATEWAY_PORTS["tgw1"] + 50


# --- Reading the files --------------------------------------------------------------------

Unit = dict[str, dict[str, list[str]]]


def read_unit(name: str) -> Unit:
    """A unit file as {section: {key: [values in order]}} (systemd keys may repeat)."""
    sections: Unit = {}
    current: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= {values}"
    return values[0]


def read_env(path: Path, *, commented: bool = False) -> dict[str, str]:
    """KEY=value lines of an EnvironmentFile; with `commented`, also `# KEY=value` ones."""
    pattern = r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=(.*)$" if commented else r"^([A-Z][A-Z0-9_]*)=(.*)$"
    return {m[1]: m[2].strip() for line in path.read_text().splitlines() if (m := re.match(pattern, line))}


def unit_environment(unit: Unit, instance: str, files: dict[str, Path]) -> dict[str, str]:
    """The environment systemd would give the unit: Environment=, then each EnvironmentFile=
    in order (later ones win), read from `files` (their installed path -> the example here)."""
    env: dict[str, str] = {}
    for assignments in unit["Service"].get("Environment", []):
        env.update(item.split("=", 1) for item in shlex.split(assignments))
    for entry in unit["Service"].get("EnvironmentFile", []):
        path = entry.lstrip("-").replace("%i", instance)
        if path in files:
            env.update(read_env(files[path]))
        else:
            assert entry.startswith("-"), f"{entry}: a required file with no example in deploy/"
    return env


def installed_files(instance: str) -> dict[str, Path]:
    """Where each example of deploy/ is installed (docs/operations.md), for `instance`."""
    files = {"/etc/gochat/env": DEPLOY / "env.example",
             f"/etc/gochat/gateway-{instance}.env": DEPLOY / "gateway.env.example"}
    for worker_env in DEPLOY.glob("worker-*.env"):
        files[f"{INSTALL_ROOT}/deploy/{worker_env.name}"] = worker_env
    return files


def exec_start(name: str, instance: str = "") -> list[list[str]]:
    """Each ExecStart= of a unit as argv, with %i, %H and ${VAR} expanded as systemd would."""
    unit = read_unit(name)
    env = unit_environment(unit, instance, installed_files(instance))
    commands = []
    for line in unit["Service"]["ExecStart"]:
        line = line.replace("%i", instance).replace("%H", "host.example")

        def var(match: re.Match[str]) -> str:
            assert match[1] in env, f"{name}: ${{{match[1]}}} is set by none of its environment files"
            return env[match[1]]

        commands.append([re.sub(r"\$\{([A-Za-z0-9_]+)\}", var, word) for word in shlex.split(line)])
    return commands


def manage_py_args(argv: list[str]) -> tuple[str, list[str]]:
    assert argv[:2] == [f"{INSTALL_ROOT}/.venv/bin/python", f"{INSTALL_ROOT}/manage.py"], argv
    return argv[2], argv[3:]


def parse_command(name: str, args: list[str]) -> dict[str, object]:
    """The options Django's parser makes of `manage.py name args` (SystemExit if it refuses them)."""
    from django.core.management import get_commands, load_command_class

    app = get_commands()[name]
    return vars(load_command_class(app, name).create_parser("manage.py", name).parse_args(args))


# --- The units, against the code ----------------------------------------------------------

@pytest.mark.parametrize("name", SERVICES)
def test_every_service_runs_as_gochat_in_opt_gochat_with_the_shared_environment(name: str) -> None:
    service = read_unit(name)["Service"]
    assert service["User"] == ["gochat"] and service["Group"] == ["gochat"]
    assert service["WorkingDirectory"] == [INSTALL_ROOT]
    assert service["EnvironmentFile"][0] == "/etc/gochat/env"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_sandboxed_with_only_the_state_directories_writable(name: str) -> None:
    service = read_unit(name)["Service"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "StateDirectory": "gochat", "ReadWritePaths": f"{INSTALL_ROOT}/.run",
                       "CapabilityBoundingSet": ""}.items():
        assert service.get(key) == [value], f"{name}: {key}={service.get(key)}"
    # Uploads go where the sandbox lets them: the StateDirectory, /var/lib/gochat.
    assert read_env(DEPLOY / "env.example")["GOCHAT_MEDIA_ROOT"].startswith("/var/lib/gochat/")


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_units_restart_with_limits_and_stop_gracefully_on_sigterm(name: str) -> None:
    unit = read_unit(name)
    assert one(unit, "Service", "Restart") in ("always", "on-failure")
    assert int(one(unit, "Service", "RestartSec")) >= 1
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) > 0 and int(one(unit, "Unit", "StartLimitBurst")) > 1
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    # Long enough for the gateway's 1012 drain, logic's last batch, a worker's task in hand.
    assert 10 <= int(one(unit, "Service", "TimeoutStopSec")) <= 120
    assert one(unit, "Unit", "PartOf") == "gochat.target"
    assert one(unit, "Install", "WantedBy") == "gochat.target"
    # Migrations, static files and topics before any process; wanted, not required, so that
    # restarting gochat-migrate for an upgrade does not restart every process with it.
    assert "gochat-migrate.service" in one(unit, "Unit", "After").split()
    assert "gochat-migrate.service" in one(unit, "Unit", "Wants").split()
    assert "Requires" not in unit["Unit"] and "BindsTo" not in unit["Unit"]


def test_gateways_may_hold_tens_of_thousands_of_sockets() -> None:
    assert int(one(read_unit("gochat-gateway@.service"), "Service", "LimitNOFILE")) >= 20000


def test_the_target_starts_migrations_logic_and_both_workers_and_names_only_shipped_units() -> None:
    target = read_unit("gochat.target")
    wants = one(target, "Unit", "Wants").split()
    assert set(wants) == {"gochat-migrate.service", "gochat-logic.service", "gochat-worker@persist.service",
                          "gochat-worker@fanout.service"}
    for wanted in wants:
        template = re.sub(r"@[^.]+\.", "@.", wanted)
        assert (DEPLOY / template).is_file(), wanted
    assert one(target, "Install", "WantedBy") == "multi-user.target"
    migrate = read_unit("gochat-migrate.service")
    assert one(migrate, "Service", "Type") == "oneshot" and one(migrate, "Service", "RemainAfterExit") == "yes"


def test_the_gateway_unit_runs_run_gateway_with_its_instance_id_and_ports() -> None:
    (argv,) = exec_start("gochat-gateway@.service", "gw1")
    command, args = manage_py_args(argv)
    options = parse_command(command, args)
    ports = read_env(DEPLOY / "gateway.env.example")
    assert (command, options["gateway_id"], options["port"], options["metrics_port"], options["host"]) == \
        ("run_gateway", "gw1", int(ports["GOCHAT_PORT"]), int(ports["GOCHAT_METRICS_PORT"]), "127.0.0.1")


def test_the_logic_unit_runs_run_logic() -> None:
    (argv,) = exec_start("gochat-logic.service")
    command, args = manage_py_args(argv)
    assert command == "run_logic"
    parse_command(command, args)


def test_the_oneshots_check_migrate_collect_static_and_create_topics() -> None:
    steps = [manage_py_args(argv) for argv in exec_start("gochat-migrate.service")]
    assert steps == [("check", ["--deploy"]), ("migrate", ["--noinput"]), ("collectstatic", ["--noinput"]),
                     ("kafka_topics", ["create"])]
    steps += [manage_py_args(argv) for argv in exec_start("gochat-cleanup-uploads.service")]
    for command, args in steps:
        parse_command(command, args)
    timer = read_unit("gochat-cleanup-uploads.timer")
    assert one(timer, "Timer", "OnCalendar") == "hourly"


@pytest.mark.parametrize("instance", sorted(WORKER_TOPICS))
def test_each_worker_instance_consumes_its_queue_solo_with_prefetch_one(instance: str) -> None:
    from django.test import override_settings

    from gochat_project.infra import kafka

    (argv,) = exec_start("gochat-worker@.service", instance)
    assert argv[:4] == [f"{INSTALL_ROOT}/.venv/bin/celery", "-A", "gochat_project", "worker"], argv
    assert {"--pool=solo", "--prefetch-multiplier=1"} <= set(argv), argv
    queue = argv[argv.index("-Q") + 1]
    assert argv[argv.index("-n") + 1] == f"{instance}@host.example"
    with override_settings(GOCHAT_TOPIC_PREFIX="gochat"):  # GoChat's default, which env.example keeps
        assert queue == getattr(kafka, WORKER_TOPICS[instance])()
    assert read_env(DEPLOY / "env.example")["GOCHAT_TOPIC_PREFIX"] == "gochat"


def test_an_unknown_worker_instance_has_no_queue_and_cannot_start() -> None:
    """Its per-queue file is required (no '-'), and none ships for it."""
    entries = read_unit("gochat-worker@.service")["Service"]["EnvironmentFile"]
    assert f"{INSTALL_ROOT}/deploy/worker-%i.env" in entries
    assert {p.name for p in DEPLOY.glob("worker-*.env")} == {f"worker-{i}.env" for i in WORKER_TOPICS}


def test_every_metrics_port_is_its_own_and_none_is_behind_nginx() -> None:
    logic = unit_environment(read_unit("gochat-logic.service"), "", installed_files(""))
    metrics = {"logic": logic["GOCHAT_METRICS_PORT"],
               "gateway": read_env(DEPLOY / "gateway.env.example")["GOCHAT_METRICS_PORT"],
               **{i: read_env(DEPLOY / f"worker-{i}.env")["GOCHAT_METRICS_PORT"] for i in WORKER_TOPICS}}
    assert len(set(metrics.values())) == len(metrics), metrics
    assert "GOCHAT_METRICS_PORT" not in read_env(DEPLOY / "env.example", commented=True)
    upstream = nginx_upstream_ports()
    assert not upstream & {int(p) for p in metrics.values()}
    assert int(read_env(DEPLOY / "gateway.env.example")["GOCHAT_PORT"]) in upstream


# --- The environment ----------------------------------------------------------------------

def test_env_example_names_only_variables_gochat_reads_and_documents() -> None:
    names = read_env(DEPLOY / "env.example", commented=True)
    # settings.py, and secret_key.py, which it hands the environment to.
    read = "".join((ROOT / "gochat_project" / f).read_text() for f in ("settings.py", "secret_key.py"))
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert f'"{name}"' in read, f"{name}: settings.py never reads it"
        assert f"`{name}`" in readme, f"{name}: not in README.md's configuration table"


def test_env_example_is_a_production_configuration_behind_one_proxy() -> None:
    env = read_env(DEPLOY / "env.example")
    assert {"GOCHAT_HTTPS": "1", "GOCHAT_PROXY_SSL_HEADER": "1", "GOCHAT_TRUSTED_PROXIES": "1",
            "DJANGO_DEBUG": "0"}.items() <= env.items()
    for name in ("DJANGO_ALLOWED_HOSTS", "GOCHAT_KAFKA_BOOTSTRAP", "GOCHAT_DATABASE_URL", "GOCHAT_REDIS_URL",
                 "GOCHAT_GATEWAY_IDS"):
        assert env.get(name), name
    assert ("GOCHAT_SECRET_KEY_FILE" in env) != ("DJANGO_SECRET_KEY" in env)  # one source of the key, no key
    assert not env.get("DJANGO_SECRET_KEY")


def test_env_example_passes_check_deploy_without_a_warning(tmp_path: Path) -> None:
    """`manage.py check --deploy` (as gochat-migrate runs it) on env.example alone, with a
    key in a file as env.example says."""
    key = tmp_path / "secret_key"
    key.write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
    env = {**read_env(DEPLOY / "env.example"), "GOCHAT_SECRET_KEY_FILE": str(key),
           "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout, done.stdout


# --- systemd-analyze ----------------------------------------------------------------------

def render_units(into: Path, root: Path = ROOT) -> None:
    """The units as installed, with /opt/gochat replaced by `root` (this checkout: its .venv,
    manage.py): verify checks that every ExecStart binary exists. User=gochat stays: verify
    does not resolve users (checked above and in the install steps)."""
    for path in [*DEPLOY.glob("*.service"), *DEPLOY.glob("*.target"), *DEPLOY.glob("*.timer")]:
        (into / path.name).write_text(path.read_text().replace(INSTALL_ROOT, str(root)))


def systemd_analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:  # installed if missing, as nginx is below (Debian: the systemd package)
        from gochat_project.ops.services import apt_install

        apt_install("systemd")
        tool = shutil.which("systemd-analyze")
    assert tool, "apt-get install systemd left no systemd-analyze"
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verify_finds_nothing_to_report(tmp_path: Path) -> None:
    render_units(tmp_path)
    done = systemd_analyze("verify", "--man=no", *(str(tmp_path / u) for u in VERIFIED), cwd=tmp_path)
    # Any line at all (an unknown key, a bad value, a missing binary) is a finding.
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), done.stdout + done.stderr


def test_systemd_analyze_verify_would_catch_a_missing_binary(tmp_path: Path) -> None:
    """The check above is not vacuous: rendered onto a root without a venv, every unit fails."""
    render_units(tmp_path, root=tmp_path / "nowhere")
    done = systemd_analyze("verify", "--man=no", str(tmp_path / "gochat-gateway@gw1.service"), cwd=tmp_path)
    assert done.returncode != 0
    assert f"{tmp_path}/nowhere/.venv/bin/python is not executable" in done.stderr, done.stderr


@pytest.mark.parametrize("name", [u for u in VERIFIED if u.endswith(".service")])
def test_systemd_analyze_security_rates_every_service_ok(tmp_path: Path, name: str) -> None:
    render_units(tmp_path)
    done = systemd_analyze("security", "--offline=yes", str(tmp_path / name), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", done.stdout)
    assert found, done.stdout[-2000:]
    assert float(found[1]) <= 2.0 and found[2] in ("PERFECT", "SAFE", "OK"), found[0]


# --- nginx --------------------------------------------------------------------------------

def nginx_upstream_ports() -> set[int]:
    block = re.search(r"upstream gochat_gateways \{(.*?)\}", SITE.read_text(), re.S)
    assert block, "no upstream gochat_gateways"
    return {int(p) for p in re.findall(r"^\s*server 127\.0\.0\.1:(\d+)", block[1], re.M)}


def site_locations() -> dict[str, str]:
    """`location` -> its body, for the TLS server (the only one with locations that proxy)."""
    return {m[1]: m[2] for m in re.finditer(r"location ([^{]+?) \{(.*?)\n    \}", SITE.read_text(), re.S)}


def test_the_site_proxies_sockets_with_upgrade_headers_and_never_metrics() -> None:
    text = SITE.read_text()
    locations = site_locations()
    ws = locations["= /ws"]
    for header in ("Upgrade $http_upgrade", "Connection $gochat_connection", "Host $host",
                   "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme"):
        assert f"proxy_set_header {header};" in ws, header
    assert "proxy_http_version 1.1;" in ws
    read_timeout = re.search(r"proxy_read_timeout (\d+)([smh]);", ws)
    assert read_timeout
    seconds = int(read_timeout[1]) * {"s": 1, "m": 60, "h": 3600}[read_timeout[2]]
    assert seconds > 3 * 20  # well beyond Daphne's 20 s ping and GOCHAT_HEARTBEAT_S
    assert "map $http_upgrade $gochat_connection" in text
    for header in ("Host $host", "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme"):
        assert f"proxy_set_header {header};" in locations["/"], header
    assert locations["= /metrics"].strip() == "return 404;"
    # Nothing is proxied anywhere but to the gateways' upstream.
    assert set(re.findall(r"proxy_pass (\S+);", text)) == {"http://gochat_gateways"}
    assert "least_conn;" in text


def test_the_site_redirects_http_and_logs_no_query_strings() -> None:
    text = SITE.read_text()
    assert "return 301 https://$host$request_uri;" in text
    assert re.search(r"listen 443 ssl;", text) and "ssl_certificate " in text
    fmt = re.search(r"log_format gochat (.*?);", text, re.S)
    assert fmt and "$request_uri" not in fmt[1] and "$request " not in fmt[1] and "$args" not in fmt[1]
    assert all(line.strip().endswith(" gochat;") for line in text.splitlines() if line.strip().startswith("access_log"))


def test_client_max_body_size_admits_the_largest_upload_and_little_more() -> None:
    from gochat_project.middleware import MULTIPART_OVERHEAD

    size = re.search(r"client_max_body_size (\d+)m;", SITE.read_text())
    assert size
    limit = int(read_env(DEPLOY / "env.example")["GOCHAT_MAX_UPLOAD_BYTES"])
    # GoChat itself answers 413 (in JSON) up to its own allowance; nginx only beyond it.
    assert limit + MULTIPART_OVERHEAD <= int(size[1]) * 2**20 <= limit + 2 * 2**20


@pytest.fixture(scope="module")
def nginx() -> str:
    """Debian's nginx, installed if missing (the package's own service is not started:
    this container's policy-rc.d denies it, and nothing here asks for it)."""
    from gochat_project.ops.services import apt_install

    if shutil.which("nginx", path="/usr/sbin:/usr/bin") is None:
        apt_install("nginx")
    found = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    assert found, "apt-get install nginx left no nginx binary"
    return found


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the live test verifies against it)."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key



def nginx_conf(directory: Path, site: str) -> Path:
    """A main nginx.conf of our own around the site: pid, logs and temporary files in
    `directory`, so nginx runs as this user without touching /etc/nginx or /var."""
    cert, key = self_signed_certificate(directory)
    site = (site.replace("/etc/ssl/gochat/fullchain.pem", str(cert))
                .replace("/etc/ssl/gochat/privkey.pem", str(key))
                .replace("/var/log/nginx/", f"{directory}/"))
    (directory / "gochat.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {directory}/{kind}_temp;"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # else workers would switch to nobody
    conf = directory / "nginx.conf"
    conf.write_text(f"{user}pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\nworker_processes 1;\n"
                    f"events {{ worker_connections 1024; }}\n"
                    f"http {{\n    access_log {directory}/access.log;\n{temp}\n"
                    f"    include {directory}/gochat.conf;\n}}\n")
    return conf


def test_nginx_accepts_the_site(nginx: str, tmp_path: Path) -> None:
    conf = nginx_conf(tmp_path, SITE.read_text())
    done = subprocess.run([nginx, "-t", "-c", str(conf), "-e", str(tmp_path / "error.log"), "-p", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    assert "[warn]" not in done.stderr and "[emerg]" not in done.stderr, done.stderr


# --- nginx in front of the live gateways --------------------------------------------------

@pytest.fixture
def proxy(nginx: str, tmp_path: Path, stack: object) -> Iterator[Path]:
    """The site as shipped, but listening on loopback test ports and proxying to the
    stack's gateways; nginx in the foreground, stopped (by its pid) at the end."""
    site = SITE.read_text()
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{NGINX_HTTP_PORT};")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{NGINX_HTTPS_PORT} ssl;")
    servers = "".join(f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n"
                      for port in GATEWAY_PORTS.values())
    site = re.sub(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, site)
    conf = nginx_conf(tmp_path, site)
    proc = subprocess.Popen([nginx, "-c", str(conf), "-e", str(tmp_path / "error.log"), "-p", str(tmp_path),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: proc.poll() is not None or _listening(NGINX_HTTPS_PORT), 15, "nginx to listen")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield tmp_path
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then the master exits
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def next_frame(ws: ClientConnection, match: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if match(frame):
            return frame


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.e2e
def test_rest_uploads_and_websockets_pass_through_nginx(proxy: Path) -> None:
    base = f"https://127.0.0.1:{NGINX_HTTPS_PORT}"
    cert = str(proxy / "fullchain.pem")
    r = requests.get(f"http://127.0.0.1:{NGINX_HTTP_PORT}/api/users/me", allow_redirects=False, timeout=10)
    assert (r.status_code, r.headers["Location"]) == (301, "https://127.0.0.1/api/users/me")

    names = [f"ngx{uuid.uuid4().hex[:10]}" for _ in range(2)]
    users = []
    for name in names:
        r = requests.post(f"{base}/api/auth/register", json={"username": name, "password": PASSWORD}, verify=cert,
                          timeout=10)
        assert r.status_code == 201, r.text
        r = requests.post(f"{base}/api/auth/login", json={"username": name, "password": PASSWORD}, verify=cert,
                          timeout=10)
        assert r.status_code == 200, r.text
        users.append(r.json())
    headers = {"Authorization": f"Bearer {users[0]['access']}"}
    r = requests.get(f"{base}/api/users/me", headers=headers, verify=cert, timeout=10)
    assert (r.status_code, r.json()["username"]) == (200, names[0]), r.text
    assert requests.get(f"{base}/metrics", verify=cert, timeout=10).status_code == 404

    # An upload of exactly GOCHAT_MAX_UPLOAD_BYTES gets through client_max_body_size.
    from django.conf import settings

    data = b"\0" * settings.GOCHAT_MAX_UPLOAD_BYTES
    r = requests.post(f"{base}/api/uploads", files={"file": ("exact.bin", data, "application/octet-stream")},
                      headers=headers, verify=cert, timeout=60)
    assert (r.status_code, r.json()["size"]) == (201, len(data)), r.text[:500]

    # The WebSocket upgrade, authentication and a message's ack, all through nginx.
    context = ssl.create_default_context(cafile=cert)
    token = users[0]["access"]
    a, b = sorted((users[0]["user"]["id"], users[1]["user"]["id"]))
    with connect(f"wss://127.0.0.1:{NGINX_HTTPS_PORT}/ws?token={token}", ssl=context, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert next_frame(ws, lambda f: f["type"] in ("pong", "error"))["type"] == "pong"
        ws.send(json.dumps({"type": "send", "client_msg_id": "c1", "conversation_id": f"s_{a}_{b}",
                            "body": "via nginx"}))
        ack = next_frame(ws, lambda f: f.get("client_msg_id") == "c1")
        assert ack["type"] == "ack", ack

    # The access log shows the socket's path, never its token.
    log = (proxy / "gochat.access.log").read_text()
    assert '"GET /ws HTTP/1.1" 101' in log, log[-2000:]
    assert token not in log
