import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


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
        logic = _logic(batch_size)
        freeze_startup_objects()

        def stop(signum: int, frame: Any) -> None:
            logic.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logic.run()


def _logic(batch_size: int) -> Any:
    """The loop GOCHAT_LOGIC_LOOP names (docs/benchmarks.md compares them)."""
    if settings.GOCHAT_LOGIC_LOOP == "arroyo":
        from messaging.logic.arroyo_loop import ArroyoLogic

        return ArroyoLogic(batch_size=batch_size)
    if settings.GOCHAT_LOGIC_LOOP != "native":
        raise CommandError(f"GOCHAT_LOGIC_LOOP={settings.GOCHAT_LOGIC_LOOP!r}: native or arroyo")
    from messaging.logic.loop import Logic

    return Logic(batch_size=batch_size)
