import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from gochat_project.ops import services


class Command(BaseCommand):
    help = ("Bring up GoChat's dependencies idempotently (`up`: MariaDB and Redis, installed and started if "
            "down; the database; the embedded Apache Kafka broker; topics) or stop the embedded broker (`down`).")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["up", "down"])

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "down":
            stopped = settings.GOCHAT_KAFKA_EMBEDDED and services.broker_stop()
            self.stdout.write("embedded Kafka broker stopped" if stopped else "no embedded Kafka broker was running")
            return
        try:
            for line in services.services_up():
                self.stdout.write(line)
        except services.ServiceUnavailable as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(2)
