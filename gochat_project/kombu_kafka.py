"""kombu's confluentkafka transport, with consumer settings per queue.

kombu gives every queue's consumer the same `kafka_consumer_config`. GoChat's queues
differ: a fan-out job is on the path of a large group's delivery, a persistence task
is not (the sender's ack waits for the task's Kafka write, never for the worker). The
transport option `kafka_consumer_config_by_queue` ({queue: {setting: value}}) is laid
over the common config for that queue's consumer only.
"""

from typing import Any

from confluent_kafka import Consumer
from kombu.transport import confluentkafka

from gochat_project.kafka import celery_consumer_group


def consumer_config(queue: str, common: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """What kombu would configure for this queue's consumer (same group, so committed
    offsets carry over), with the queue's own overrides on top."""
    return {
        "group.id": celery_consumer_group(queue),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **common,
        **(options.get("kafka_consumer_config") or {}),
        **((options.get("kafka_consumer_config_by_queue") or {}).get(queue) or {}),
    }


class Channel(confluentkafka.Channel):
    def _get_consumer(self, queue: str) -> Any:
        name = self.sanitize_queue_name(queue)
        if name not in self._kafka_consumers:
            consumer = Consumer(consumer_config(name, self.common_config, self.options))
            consumer.subscribe([name])
            self._kafka_consumers[name] = consumer
        return self._kafka_consumers[name]


class Transport(confluentkafka.Transport):
    Channel = Channel
