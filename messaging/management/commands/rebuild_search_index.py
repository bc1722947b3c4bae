import time
from typing import Any

from django.core.management.base import BaseCommand

from messaging import search


class Command(BaseCommand):
    help = ("Rebuild the message search index from the stored messages: every unrecalled message is indexed "
            "with its current body, recalled ones are taken out. In place by default (searches and persistence "
            "keep running); --truncate empties the index first, for an index that was lost or damaged.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--truncate", action="store_true", help="empty the index first")
        parser.add_argument("--batch", type=int, default=5000, help="messages per INSERT (default 5000)")

    def handle(self, *args: Any, truncate: bool, batch: int, **options: Any) -> None:
        started = time.monotonic()
        count = search.search_index_rebuild(batch=batch, truncate=truncate)
        self.stdout.write(f"indexed {count} messages in {time.monotonic() - started:.1f} s")
