"""Bulk demo data for demos and benchmarks: N users and a group of M members,
with bulk inserts (never one REST call per user)."""

import time
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from accounts.models import User
from groups.models import Group, GroupMember, Role
from groups.selectors import group_cache_invalidate

BATCH = 5000


class Command(BaseCommand):
    help = ("Create N demo users (username {prefix}{i}, one shared password) and optionally a group of the "
            "first M of them, fast. Example: manage.py seed_demo --users 100000 --group-size 100000")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--users", type=int, required=True, help="how many users to create")
        parser.add_argument("--group-size", type=int, default=0, help="members of the demo group (0: no group)")
        parser.add_argument("--prefix", default="demo", help="username prefix (default: demo)")
        parser.add_argument("--password", default="demo-password-1", help="password of every demo user")
        parser.add_argument("--group-name", default="Demo group")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, users: int, group_size: int, prefix: str, password: str, group_name: str,
               no_progress: bool, **options: Any) -> None:
        if users < 1 or not 0 <= group_size <= users:
            raise CommandError("need --users >= 1 and 0 <= --group-size <= --users")
        if not 1 <= len(prefix) <= 20 or not prefix.replace("_", "").isalnum():
            raise CommandError("--prefix must be 1-20 letters, digits or _")
        started = time.monotonic()
        user_ids = self._users(users, prefix, make_password(password), no_progress)
        self.stdout.write(f"users: {len(user_ids)} ({prefix}0..{prefix}{users - 1}) in "
                          f"{time.monotonic() - started:.1f}s")
        if group_size:
            t = time.monotonic()
            group = self._group(group_name, user_ids[:group_size], no_progress)
            self.stdout.write(f"group: id {group.pk} ({group.conversation_id}), {group_size} members, owner "
                              f"{prefix}0, in {time.monotonic() - t:.1f}s")
        self.stdout.write(f"done in {time.monotonic() - started:.1f}s")

    def _users(self, count: int, prefix: str, password_hash: str, quiet: bool) -> list[int]:
        names = [f"{prefix}{i}" for i in range(count)]
        # Re-running is safe: existing demo users are kept (insert-or-ignore).
        for start in tqdm(range(0, count, BATCH), desc="users", unit="batch", disable=quiet):
            User.objects.bulk_create(
                [User(username=n, nickname=n, password=password_hash) for n in names[start:start + BATCH]],
                batch_size=BATCH, ignore_conflicts=True)
        ids = dict(User.objects.filter(username__startswith=prefix).values_list("username", "id"))
        return [ids[n] for n in names]

    def _group(self, name: str, member_ids: list[int], quiet: bool) -> Group:
        with transaction.atomic():
            group = Group.objects.create(name=name, owner_id=member_ids[0], member_count=len(member_ids))
            rows = [GroupMember(group=group, user_id=member_ids[0], role=Role.OWNER)]
            rows += [GroupMember(group=group, user_id=u) for u in member_ids[1:]]
            for start in tqdm(range(0, len(rows), BATCH), desc="members", unit="batch", disable=quiet):
                GroupMember.objects.bulk_create(rows[start:start + BATCH], batch_size=BATCH)
        group_cache_invalidate(group.pk)
        return group
