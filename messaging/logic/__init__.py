"""The logic process (`manage.py run_logic`): `loop.py` consumes upstream,
`pipeline.py` runs one batch through the steps, `assign.py` takes seqs (with the
fence), `routing.py` builds the ack and every other frame and sends them to gateways.

Kept light: `logic_group_id` is imported by status, chaos and bench tools."""

from django.conf import settings

LOGIC_GROUP_SUFFIX = "logic"


def logic_group_id() -> str:
    """The consumer group of every logic process (shares the upstream partitions)."""
    return f"{settings.GOCHAT_TOPIC_PREFIX}-{LOGIC_GROUP_SUFFIX}"
