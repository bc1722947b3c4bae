"""Production settings: `manage.py check --deploy` is clean with the production
switches, debug pages stay off unless asked for, and a process refuses to start on a
secret key that is public, short or missing. Each runs in a subprocess with its own
environment (no live stack needed)."""

import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.stack import ROOT

HOST = "chat.example.com"


def production_env(**extra: str) -> dict[str, str]:
    """Production as docs/operations.md describes it: its own key, host and Kafka cluster,
    https. Debug is not mentioned: off is the default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GOCHAT_HTTPS", "GOCHAT_HSTS",
                                                                    "GOCHAT_PROXY_SSL", "GOCHAT_KAFKA_",
                                                                    "GOCHAT_SECRET_KEY"))}
    env.update({"DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "DJANGO_ALLOWED_HOSTS": HOST,
                "GOCHAT_HTTPS": "1", "DJANGO_SETTINGS_MODULE": "gochat_project.settings",
                "GOCHAT_KAFKA_BOOTSTRAP": "kafka1.example.com:9093,kafka2.example.com:9093"})
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_production_switches() -> None:
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout, out.stdout + out.stderr


def test_check_deploy_warns_when_production_still_uses_the_embedded_broker() -> None:
    env = production_env()
    del env["GOCHAT_KAFKA_BOOTSTRAP"]
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert out.returncode != 0 and "gochat.W001" in out.stderr + out.stdout, out.stdout + out.stderr
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
              production_env(GOCHAT_KAFKA_BOOTSTRAP="127.0.0.1:9092", GOCHAT_KAFKA_EMBEDDED="1"))
    assert out.returncode != 0 and "gochat.W001" in out.stderr + out.stdout, out.stdout + out.stderr


def test_check_deploy_names_what_plain_http_lacks() -> None:
    """Without GOCHAT_HTTPS (the local default, plain http) the deploy check says so:
    the switch is what makes it clean, not a silenced check."""
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(GOCHAT_HTTPS="0"))
    assert out.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in out.stderr + out.stdout, warning


def test_production_without_its_own_key_is_warned() -> None:
    """No DJANGO_SECRET_KEY: the process starts on the key generated in .run/ (private, but
    this machine's alone), and the deploy check says production must supply one."""
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert out.returncode != 0 and "gochat.W002" in out.stderr + out.stdout, out.stdout + out.stderr
    assert "W001" not in out.stderr + out.stdout and "security.W" not in out.stderr + out.stdout


OLD_DEV_KEY = "dev-insecure-gochat-key-do-not-use-in-production-0123456789"


@pytest.mark.parametrize("env", [{"DJANGO_SECRET_KEY": OLD_DEV_KEY}, {"DJANGO_SECRET_KEY": "short-and-guessable"},
                                 {"DJANGO_SECRET_KEY": "django-insecure-" + "x" * 50},
                                 {"DJANGO_SECRET_KEY": "", "GOCHAT_SECRET_KEY_FILE": "/nonexistent/gochat-key"}])
def test_a_public_short_or_missing_key_refuses_to_start(env: dict[str, str]) -> None:
    out = run(["manage.py", "check"], production_env(**env))
    assert out.returncode != 0
    assert "efusing to start" in out.stderr, out.stderr


def test_a_key_file_supplies_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text(secrets.token_urlsafe(64) + "\n")
    env = production_env(GOCHAT_SECRET_KEY_FILE=str(key_file))
    del env["DJANGO_SECRET_KEY"]
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert out.returncode == 0, out.stdout + out.stderr


PROBE = textwrap.dedent(f"""
    import json, django
    django.setup()
    from django.test import Client
    out = {{}}
    plain = Client(HTTP_HOST="{HOST}").get("/api/users/me")
    out["http"] = [plain.status_code, plain.headers.get("Location")]
    secure = Client(HTTP_HOST="{HOST}").get("/api/users/me", secure=True)
    out["https"] = [secure.status_code, secure.headers.get("Strict-Transport-Security")]
    proxied = Client(HTTP_HOST="{HOST}").get("/api/users/me", HTTP_X_FORWARDED_PROTO="https")
    out["proxied"] = [proxied.status_code]
    health = Client(HTTP_HOST="{HOST}").get("/healthz")
    out["healthz"] = [health.status_code]
    other = Client(HTTP_HOST="evil.example.org").get("/healthz", secure=True)
    out["other_host"] = [other.status_code]
    print(json.dumps(out))
""")


def test_https_switches_redirect_and_send_hsts() -> None:
    import json

    out = run(["-c", PROBE], production_env(GOCHAT_PROXY_SSL_HEADER="1"))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["http"] == [301, f"https://{HOST}/api/users/me"]
    status, hsts = seen["https"]
    assert status == 401 and hsts == "max-age=31536000; includeSubDomains; preload"
    assert seen["proxied"] == [401]  # X-Forwarded-Proto: https from the TLS proxy counts as https
    assert seen["healthz"] == [200]  # probes over plain http inside the network are not redirected
    assert seen["other_host"] == [400]  # DJANGO_ALLOWED_HOSTS holds


DEBUG_PROBE = textwrap.dedent("""
    import django
    django.setup()
    from django.test import Client
    r = Client(HTTP_HOST="127.0.0.1", raise_request_exception=False).get("/no/such/page")
    print("STATUS", r.status_code, "URLCONF" if b"URLconf" in r.content else "PLAIN",
          r.headers.get("Strict-Transport-Security"))
""")


def _local_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GOCHAT_HTTPS", "GOCHAT_PROXY"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "gochat_project.settings", **extra}


def _status_line(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 0, out.stderr
    return next(line for line in out.stdout.splitlines() if line.startswith("STATUS")).split()[1:]


def test_local_defaults_serve_plain_http_without_debug_pages() -> None:
    """`make run`'s defaults: debug off (a 404 names no URL patterns), no redirect, no HSTS."""
    assert _status_line(run(["-c", DEBUG_PROBE], _local_env())) == ["404", "PLAIN", "None"]


def test_debug_pages_only_when_asked_for() -> None:
    assert _status_line(run(["-c", DEBUG_PROBE], _local_env(DJANGO_DEBUG="1"))) == ["404", "URLCONF", "None"]
