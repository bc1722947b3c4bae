import sys
from typing import Any

from django.core.management.base import BaseCommand

from gochat_project import services


class Command(BaseCommand):
    help = ("Bring up GoChat's dependencies idempotently (`up`: MySQL database, Redis check, bundled Kafka "
            "broker, topics) or stop the bundled broker (`down`).")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["up", "down"])

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "down":
            stopped = services.broker_stop()
            self.stdout.write("bundled broker stopped" if stopped else "no bundled broker was running")
            return
        try:
            for line in services.services_up():
                self.stdout.write(line)
        except services.ServiceUnavailable as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(2)
