"""GoChat's own deploy checks (`manage.py check --deploy`)."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_kafka_is_a_cluster(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A production configuration should name the operator's Kafka cluster: the embedded
    broker is one node on this machine, replicated nowhere."""
    if not settings.GOCHAT_KAFKA_EMBEDDED:
        return []
    return [Warning(
        f"Kafka is the embedded single-machine broker ({settings.KAFKA_BOOTSTRAP}).",
        hint="Set GOCHAT_KAFKA_BOOTSTRAP to your Kafka cluster (docs/operations.md, "
             "'Running on your Kafka cluster'); GOCHAT_KAFKA_EMBEDDED=0 if it is set.",
        id="gochat.W001",
    )]


@register(Tags.security, deploy=True)
def check_secret_key_is_supplied(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A key generated into .run/ is private but belongs to one machine and one checkout:
    a second gateway elsewhere would refuse every token the first one signed."""
    if settings.GOCHAT_SECRET_KEY_SOURCE != "generated":
        return []
    return [Warning(
        "SECRET_KEY was generated on this machine (.run/secret_key).",
        hint="Supply the production key: DJANGO_SECRET_KEY, or GOCHAT_SECRET_KEY_FILE naming a file that holds "
             "it, the same on every machine that runs GoChat.",
        id="gochat.W002",
    )]
