"""Production settings: `manage.py check --deploy` is clean with the production
switches, and a production process refuses to start without its secret key. Each
runs in a subprocess with its own environment (no live stack needed)."""

import os
import secrets
import subprocess
import sys
import textwrap

from tests.stack import ROOT

HOST = "chat.example.com"


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GOCHAT_HTTPS", "GOCHAT_HSTS",
                                                                    "GOCHAT_PROXY_SSL", "GOCHAT_KAFKA_"))}
    env.update({"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "DJANGO_ALLOWED_HOSTS": HOST,
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


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    out = run(["manage.py", "check"], env)
    assert out.returncode != 0
    assert "DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is off: refusing to start" in out.stderr, out.stderr
    empty = run(["manage.py", "check"], {**env, "DJANGO_SECRET_KEY": ""})
    assert empty.returncode != 0 and "refusing to start" in empty.stderr


def test_a_short_secret_key_fails_the_deploy_check() -> None:
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
              production_env(DJANGO_SECRET_KEY="short-and-guessable"))
    assert out.returncode != 0 and "security.W009" in out.stderr + out.stdout


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


def test_local_defaults_serve_plain_http() -> None:
    """`make run`'s defaults (debug on, no GOCHAT_HTTPS): no redirect, no HSTS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GOCHAT_HTTPS", "GOCHAT_PROXY"))}
    out = run(["-c", textwrap.dedent("""
        import django
        django.setup()
        from django.test import Client
        r = Client(HTTP_HOST="127.0.0.1").get("/healthz")
        print(r.status_code, r.headers.get("Strict-Transport-Security"))
    """)], {**env, "DJANGO_SETTINGS_MODULE": "gochat_project.settings"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["200", "None"]
