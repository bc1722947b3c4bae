"""Session fixtures: MariaDB and Redis (installed and started if down), the test's own
Apache Kafka broker (embedded, on 19092), Redis db, MySQL database, and the live GoChat
processes. Nothing is mocked."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.stack import Stack, wait_until


def pytest_sessionstart(session: pytest.Session) -> None:
    """`manage.py services up` on the test's settings, before pytest-django creates the
    test database: what a new machine lacks is installed and started here. The test's
    embedded broker is stopped at the end if this run started it."""
    from gochat_project.ops import services

    settings = services.settings
    started = settings.GOCHAT_KAFKA_EMBEDDED and not services.port_open(settings.KAFKA_BOOTSTRAP)
    session.config.stash[_BROKER_STARTED] = started
    for line in services.services_up():
        print(line)
    from django.core.management import call_command

    # Before the stack's gateways start: WhiteNoise lists STATIC_ROOT at start-up, and
    # admin and API-docs pages need the manifest (settings.py, "Static files").
    call_command("collectstatic", interactive=False, verbosity=0)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from gochat_project.ops import services

    if session.config.stash.get(_BROKER_STARTED, False):
        services.broker_stop()


_BROKER_STARTED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_blocker: Any) -> Iterator[None]:
    """Always create the test database: the live processes need it even when no
    test in the run asks for pytest-django's `db` (which sets up only on demand)."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def clean_redis() -> None:
    from gochat_project.infra import redis_client

    redis_client.client().flushdb()


@pytest.fixture(scope="session")
def clean_media() -> None:
    """Uploaded files of earlier runs go with their database rows (the test database is new)."""
    import shutil

    from django.conf import settings

    if "test-media" in settings.MEDIA_ROOT.parts:  # pyproject.toml's test directory, never a live one
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(django_db_setup: None, django_db_blocker: Any, clean_redis: None,
          clean_media: None) -> Iterator[Stack]:
    from tests.client import register

    live = Stack()
    live.start()
    try:
        # Prove the whole pipeline (gateway -> upstream -> logic -> persist -> downstream) works.
        a, b = register("warm"), register("warm")
        sock = a.ws()
        cid = f"s_{min(a.id, b.id)}_{max(a.id, b.id)}"
        cmid = sock.send_message(cid, "warm-up")
        sock.ack_for(cmid, timeout=60)
        sock.close()
        yield live
    finally:
        live.stop()


class Db:
    """Reads of what the live processes committed (the test process holds no transaction)."""

    def __init__(self, blocker: Any) -> None:
        self.blocker = blocker

    @contextmanager
    def access(self) -> Iterator[None]:
        with self.blocker.unblock():
            yield

    def stored(self, cid: str) -> list[tuple[int, str, str]]:
        from messaging.models import Message

        with self.access():
            return [(seq, str(mid), cmid) for seq, mid, cmid in Message.objects.filter(conversation_id=cid)
                    .order_by("seq").values_list("seq", "message_id", "client_msg_id")]

    def wait_stored(self, cid: str, count: int, timeout: float = 30) -> list[tuple[int, str, str]]:
        wait_until(lambda: len(self.stored(cid)) >= count, timeout, f"{count} rows stored in {cid}", interval=0.2)
        return self.stored(cid)

    def wait_messages(self, message_ids: list[int], timeout: float = 30) -> None:
        """Until every one of these messages is committed to MySQL."""
        from messaging.models import Message

        def all_stored() -> bool:
            with self.access():
                return Message.objects.filter(message_id__in=message_ids).count() == len(set(message_ids))

        wait_until(all_stored, timeout, f"{len(message_ids)} messages stored", interval=0.2)


@pytest.fixture
def db_reader(django_db_blocker: Any) -> Db:
    return Db(django_db_blocker)
