"""Where the secret key comes from, and the keys refused (gochat_project/secret_key.py)."""

import multiprocessing
import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from gochat_project import secret_key

GOOD = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"
OLD_DEV_KEY = "dev-insecure-gochat-key-do-not-use-in-production-0123456789"


def test_the_environment_key_comes_first(tmp_path: Path) -> None:
    assert secret_key.load({"DJANGO_SECRET_KEY": GOOD}, tmp_path / "k") == (GOOD, "environment")
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("key", [OLD_DEV_KEY, "django-insecure-" + "x" * 50, "short-and-guessable"])
def test_public_and_short_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="efusing to start"):
        secret_key.load({"DJANGO_SECRET_KEY": key}, tmp_path / "k")
    (tmp_path / "file").write_text(key + "\n")
    with pytest.raises(ImproperlyConfigured):
        secret_key.load({"GOCHAT_SECRET_KEY_FILE": str(tmp_path / "file")}, tmp_path / "k")


def test_a_named_key_file_must_exist_and_hold_a_key(tmp_path: Path) -> None:
    named = tmp_path / "secret"
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        secret_key.load({"GOCHAT_SECRET_KEY_FILE": str(named)}, tmp_path / "k")
    named.write_text("\n")
    with pytest.raises(ImproperlyConfigured, match="is empty"):
        secret_key.load({"GOCHAT_SECRET_KEY_FILE": str(named)}, tmp_path / "k")
    named.write_text(GOOD + "\n")
    assert secret_key.load({"GOCHAT_SECRET_KEY_FILE": str(named)}, tmp_path / "k") == (GOOD, "file")
    assert not (tmp_path / "k").exists()  # never generated beside a named file


def test_a_key_is_generated_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "run" / "secret_key"
    key, source = secret_key.load({}, path)
    assert source == "generated" and len(key) >= 60
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key.load({}, path) == (key, "generated")  # the same key at the next start
    assert secret_key.load({}, tmp_path / "other")[0] != key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no candidate files left


def _load(path: str) -> str:
    return secret_key.generated_key(Path(path))


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    with multiprocessing.get_context("fork").Pool(8) as pool:
        keys = pool.map(_load, [str(path)] * 64)
    assert len(set(keys)) == 1 and keys[0] == path.read_text().strip()
