import sys
import time
from typing import Any

from django.core.management.base import BaseCommand

from gochat_project import kafka
from messaging import sequences


class Command(BaseCommand):
    help = ("Rebuild Redis sequence counters from MySQL MAX(seq) (after a Redis loss). Waits up to --wait "
            "seconds for the persistence queue's backlog to drain and refuses if it does not, since acked "
            "messages not yet stored would be given their seq again; --force skips that check. Counters are "
            "only ever raised.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="reseed even with a persistence backlog")
        # The workers commit what they stored every 200 ms (GOCHAT_CELERY_COMMIT_INTERVAL_MS), so a
        # backlog of a few tasks right after traffic is normal and clears on its own.
        parser.add_argument("--wait", type=float, default=10.0,
                            help="seconds to wait for the persistence backlog to drain (default 10)")

    def handle(self, *args: Any, force: bool, wait: float, **options: Any) -> None:
        if not force:
            backlog = self._persistence_backlog(wait)
            if backlog:
                self.stderr.write(f"error: {backlog} persistence tasks are not done yet; wait, or use --force")
                sys.exit(1)
        count = sequences.reseed_all()
        self.stdout.write(f"reseeded {count} conversation counters from MySQL")

    @staticmethod
    def _persistence_backlog(wait: float) -> int:
        """The persistence group's lag once it is 0 or wait seconds have passed."""
        topic = kafka.persist_topic()
        probe = kafka.GroupLagProbe(kafka.celery_consumer_group(topic), topic)
        deadline = time.monotonic() + wait
        try:
            while (backlog := probe.lag()) and time.monotonic() < deadline:
                time.sleep(0.2)
            return backlog
        finally:
            probe.close()
