import pytest
from django.test import Client


def test_healthz() -> None:
    assert Client().get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_with_everything_up() -> None:
    r = Client().get("/readyz")
    assert r.status_code == 200, r.content
    assert r.json()["checks"] == {"mysql": "ok", "redis": "ok", "kafka": "ok"}


@pytest.mark.django_db
def test_readyz_names_kafka_when_it_is_down(settings: object) -> None:
    settings.KAFKA_BOOTSTRAP = "127.0.0.1:1"  # type: ignore[attr-defined]
    r = Client().get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["kafka"].startswith("unreachable")
    assert "kafka" in r.json()["detail"]
