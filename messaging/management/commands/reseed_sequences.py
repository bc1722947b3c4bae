import sys
from typing import Any

from django.core.management.base import BaseCommand

from gochat_project.infra import kafka
from messaging import sequences


class Command(BaseCommand):
    help = ("Rebuild Redis sequence counters from MySQL MAX(seq) (after a Redis loss). Waits up to --wait "
            "seconds for the persistence queue's backlog to drain and refuses if it does not, since acked "
            "messages not yet stored would be given their seq again; --force skips that check. Counters are "
            "only ever raised.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="reseed even with a persistence backlog")
        parser.add_argument("--wait", type=float, default=10.0,
                            help="seconds to wait for the persistence backlog to drain (default 10)")

    def handle(self, *args: Any, force: bool, wait: float, **options: Any) -> None:
        if not force:
            topic = kafka.persist_topic()
            backlog = kafka.consumer_group_lag(kafka.celery_consumer_group(topic), topic, drain_wait=wait)
            if backlog:
                self.stderr.write(f"error: {backlog} persistence tasks are not done yet; wait, or use --force")
                sys.exit(1)
        count = sequences.reseed_all()
        self.stdout.write(f"reseeded {count} conversation counters from MySQL")

