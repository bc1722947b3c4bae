from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions
from django.core.management.base import BaseCommand, CommandError

from gochat_project.infra import kafka
from gochat_project.ops import services


class Command(BaseCommand):
    help = ("Create, describe or alter the partition counts of GoChat's Kafka topics. "
            "`describe` (default), `create` (missing topics, with the configured counts), "
            "`alter --topic T --partitions N` (Kafka can only add partitions).")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", nargs="?", default="describe", choices=["describe", "create", "alter"])
        parser.add_argument("--topic", help="topic to alter (full name, e.g. gochat.messages.upstream)")
        parser.add_argument("--partitions", type=int, help="new partition count (alter)")

    def handle(self, *args: Any, action: str, topic: str | None, partitions: int | None, **options: Any) -> None:
        try:
            if action == "create":
                services.ensure_topics()
            elif action == "alter":
                self._alter(topic, partitions)
            self._describe()
        except services.ServiceUnavailable as exc:
            raise CommandError(str(exc)) from exc
        except KafkaException as exc:
            raise CommandError(f"kafka: {exc}") from exc

    def _alter(self, topic: str | None, partitions: int | None) -> None:
        if not topic or not partitions or partitions < 1:
            raise CommandError("alter needs --topic and --partitions >= 1")
        admin = AdminClient(kafka.common_config())
        meta = admin.list_topics(timeout=5).topics
        if topic not in meta:
            raise CommandError(f"no topic {topic}")
        current = len(meta[topic].partitions)
        if partitions < current:
            raise CommandError(f"{topic} has {current} partitions; Kafka cannot reduce them")
        if partitions > current:
            try:
                admin.create_partitions([NewPartitions(topic, partitions)])[topic].result(timeout=15)
            except KafkaException as exc:
                raise CommandError(f"adding partitions to {topic} failed: {exc.args[0].str()}") from exc
            self.stdout.write(f"{topic}: {current} -> {partitions} partitions")

    def _describe(self) -> None:
        admin = AdminClient(kafka.common_config())
        try:
            meta = admin.list_topics(timeout=5).topics
        except KafkaException as exc:
            raise services.ServiceUnavailable("kafka", str(exc)) from exc
        self.stdout.write(f"{'topic':50} {'partitions':>10} {'configured':>10}")
        for name, configured in kafka.all_topics().items():
            actual = len(meta[name].partitions) if name in meta else "missing"
            self.stdout.write(f"{name:50} {actual!s:>10} {configured:>10}")
