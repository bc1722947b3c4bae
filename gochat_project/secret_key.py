"""Where GoChat's SECRET_KEY comes from. It signs every JWT, so a key anyone can read
is a key anyone can forge tokens with: none is committed, and a known one is refused.

In order: DJANGO_SECRET_KEY; else the file GOCHAT_SECRET_KEY_FILE names (it must
exist: production keeps its key there, e.g. a systemd credential); else
`.run/secret_key`, generated on the first start of any process and kept, so tokens
outlive restarts (`make run`, the tests). Standard library only: settings import it."""

import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Keys that have been public: the development key this repository shipped until
# 2026-12 (debug mode signed tokens with it), and Django's startproject template prefix.
PUBLIC_KEYS = frozenset({"dev-insecure-gochat-key-do-not-use-in-production-0123456789"})
PUBLIC_PREFIXES = ("django-insecure-",)
MIN_LENGTH = 32


def check_not_public(key: str, source: str) -> str:
    if key in PUBLIC_KEYS or key.startswith(PUBLIC_PREFIXES):
        raise ImproperlyConfigured(f"{source} holds a secret key that is public (it was published with GoChat or "
                                   "Django): anyone can sign tokens with it. Refusing to start; set a new one.")
    if len(key) < MIN_LENGTH:
        raise ImproperlyConfigured(f"{source} holds a secret key of {len(key)} characters: refusing to start "
                                   f"with fewer than {MIN_LENGTH}. Generate one: python -c "
                                   "'import secrets; print(secrets.token_urlsafe(50))'")
    return key


def read_key_file(path: Path) -> str:
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"GOCHAT_SECRET_KEY_FILE={path} cannot be read ({exc.strerror}): "
                                   "refusing to start.") from exc
    if not key:
        raise ImproperlyConfigured(f"GOCHAT_SECRET_KEY_FILE={path} is empty: refusing to start.")
    return key


def generated_key(path: Path) -> str:
    """The key in `path`, written first if there is none. Several processes start at
    once under `make run`: each writes a candidate to its own file and links it into
    place, which fails for all but the first, so every process reads one complete key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, candidate = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600, a name of its own
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50) + "\n")
                f.flush()
                os.fsync(f.fileno())  # never an empty key file after a power loss
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            os.unlink(candidate)
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it and start again to generate a new key.")
    return key


def load(environ: dict[str, str], default_file: Path) -> tuple[str, str]:
    """(key, source): the secret key as the module docstring orders it, never a public one."""
    if environ.get("DJANGO_SECRET_KEY"):
        return check_not_public(environ["DJANGO_SECRET_KEY"], "DJANGO_SECRET_KEY"), "environment"
    if environ.get("GOCHAT_SECRET_KEY_FILE"):
        path = Path(environ["GOCHAT_SECRET_KEY_FILE"])
        return check_not_public(read_key_file(path), f"GOCHAT_SECRET_KEY_FILE={path}"), "file"
    return check_not_public(generated_key(default_file), str(default_file)), "generated"
