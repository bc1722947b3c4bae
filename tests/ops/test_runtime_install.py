"""`make run` installs requirements.txt alone: in a fresh virtualenv with only that
file, every module of GoChat imports and `manage.py check` passes, and none of the test
tools (nor the browser driver) is there."""

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.stack import ROOT

TEST_ONLY = ("pytest", "playwright", "schemathesis", "hypothesis", "ruff", "websockets", "uvicorn")
PACKAGES = ("accounts", "fanout", "gochat_project", "groups", "messaging", "uploads")

IMPORT_ALL = textwrap.dedent(f"""
    import importlib, pkgutil, django
    django.setup()
    count = 0
    for package in {PACKAGES!r}:
        for module in pkgutil.walk_packages([package], prefix=package + "."):
            importlib.import_module(module.name)
            count += 1
    importlib.import_module("gochat_project.asgi")
    print("imported", count)
""")


def test_the_runtime_requirements_run_gochat_without_test_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                               check=True).stdout.lower()
    names = {line.split("==")[0] for line in installed.splitlines()}
    assert not names & set(TEST_ONLY), names & set(TEST_ONLY)

    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "gochat_project.settings",
           "HOME": str(tmp_path)}
    imported = subprocess.run([python, "-c", IMPORT_ALL], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert int(imported.stdout.split()[-1]) > 50
    check = subprocess.run([python, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0, check.stderr[-3000:]
    for command in (["supervisord", "--version"], ["daphne", "--help"], ["celery", "--version"]):
        assert subprocess.run([str(venv / "bin" / command[0]), *command[1:]], capture_output=True,
                              timeout=60).returncode == 0, command
