"""/healthz: the process answers. /readyz: MySQL, Redis and Kafka answer (503 naming the one that does not)."""

from confluent_kafka.admin import AdminClient
from django.db import connection
from django.http import HttpRequest, JsonResponse

from gochat_project.infra import kafka, redis_client


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_mysql() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    redis_client.client().ping()


def _check_kafka() -> None:
    admin = AdminClient({**kafka.common_config(), "socket.timeout.ms": 1000})
    admin.list_topics(timeout=1.5)


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"mysql": _check_mysql, "redis": _check_redis, "kafka": _check_kafka}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            results[name] = f"unreachable: {type(exc).__name__}"
    down = [name for name, result in results.items() if result != "ok"]
    body = {"status": "ok" if not down else "unavailable", "checks": results}
    if down:
        body["detail"] = f"{', '.join(down)} unreachable"
    return JsonResponse(body, status=503 if down else 200)
