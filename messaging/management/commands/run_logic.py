import signal
from typing import Any

from django.core.management.base import BaseCommand

from messaging.logic.loop import Logic


class Command(BaseCommand):
    help = "Run the logic consumer: order, persist-first and route messages from the upstream topic."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=1000, help="max records per batch (default 1000)")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        from gochat_project.ops import malloc
        from gochat_project.ops.metrics import start_metrics_server
        from gochat_project.ops.runtime import freeze_startup_objects

        malloc.tune()  # before Logic starts librdkafka's threads
        start_metrics_server()
        logic = Logic(batch_size=batch_size)
        freeze_startup_objects()

        def stop(signum: int, frame: Any) -> None:
            logic.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logic.run()
