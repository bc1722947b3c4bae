from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from uploads.services import uploads_cleanup


class Command(BaseCommand):
    help = ("Delete uploads never sent in a message (their files too) once older than --older-than-hours "
            "(default GOCHAT_UPLOAD_MAX_AGE_HOURS, 24). Run it periodically (cron, a systemd timer).")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--older-than-hours", type=float, default=float(settings.GOCHAT_UPLOAD_MAX_AGE_HOURS))

    def handle(self, *args: Any, **options: Any) -> None:
        hours = options["older_than_hours"]
        if hours < 0:
            raise CommandError("--older-than-hours must be >= 0")
        removed = uploads_cleanup(older_than=timedelta(hours=hours))
        self.stdout.write(f"removed {removed} unsent upload(s) older than {hours:g} h")
