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
