import re
import sys
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import USERNAME_PATTERN, User

MODERATORS = "moderators"
# What a moderator may do in /admin/: find and ban users, recall messages, manage groups.
PERMISSIONS = [("accounts", "view_user"), ("accounts", "change_user"), ("messaging", "view_message"),
               ("messaging", "change_message"), ("groups", "view_group"), ("groups", "change_group"),
               ("groups", "view_groupmember"), ("groups", "change_groupmember")]


def moderators_group() -> Group:
    group, _ = Group.objects.get_or_create(name=MODERATORS)
    perms = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in PERMISSIONS]
    group.permissions.set(perms)
    return group


class Command(BaseCommand):
    help = ("Create a moderator (staff, in the 'moderators' permission group: users, messages, groups in "
            "/admin/), or promote an existing user with --promote.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", help="required unless --promote")
        parser.add_argument("--promote", action="store_true", help="make an existing user a moderator")

    def handle(self, *args: Any, username: str, password: str | None, promote: bool, **options: Any) -> None:
        user = User.objects.filter(username__iexact=username).first()
        if promote:
            if user is None:
                raise CommandError(f"no user {username}")
        else:
            if user is not None:
                raise CommandError(f"user {username} exists; use --promote")
            if not password:
                raise CommandError("--password is required")
            if not re.match(USERNAME_PATTERN, username):
                raise CommandError("username must be 3-32 characters of A-Z a-z 0-9 _ . -")
            user = User(username=username, nickname=username)
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError("weak password: " + " ".join(exc.messages)) from exc
            user.set_password(password)
        user.is_staff = True
        user.save()
        user.groups.add(moderators_group())
        self.stdout.write(f"{user.username} (id {user.pk}) is a moderator")
        sys.stdout.flush()
