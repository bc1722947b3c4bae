import getpass
import re
import sys
from typing import Any, TextIO

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import USERNAME_PATTERN, User

MODERATORS = "moderators"
# What a moderator may do in /admin/: find and ban users, recall messages, manage groups.
# accounts/admin.py narrows this further (ordinary users only, no passwords, no permissions).
PERMISSIONS = [("accounts", "view_user"), ("accounts", "change_user"), ("messaging", "view_message"),
               ("messaging", "change_message"), ("groups", "view_group"), ("groups", "change_group"),
               ("groups", "view_groupmember"), ("groups", "change_groupmember")]


def moderators_group() -> Group:
    group, _ = Group.objects.get_or_create(name=MODERATORS)
    perms = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in PERMISSIONS]
    group.permissions.set(perms)
    return group


def read_password(stdin: TextIO) -> str:
    """Asked twice at a terminal; otherwise the first line of standard input. Never an
    argument: arguments show in `ps` and in shell history."""
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("the passwords do not match")
        return password
    return stdin.readline().rstrip("\r\n")


class Command(BaseCommand):
    help = ("Create a moderator (staff, in the 'moderators' permission group: users, messages, groups in "
            "/admin/), or promote an existing user with --promote. The password is prompted for, or read "
            "as one line from standard input: echo \"$PW\" | manage.py create_moderator NAME")
    stealth_options = ("stdin",)  # call_command(..., stdin=io.StringIO("pw\n"))

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--promote", action="store_true", help="make an existing user a moderator")

    def handle(self, *args: Any, username: str, promote: bool, **options: Any) -> None:
        user = User.objects.filter(username__iexact=username).first()
        if promote:
            if user is None:
                raise CommandError(f"no user {username}")
        else:
            if user is not None:
                raise CommandError(f"user {username} exists; use --promote")
            if not re.match(USERNAME_PATTERN, username):
                raise CommandError("username must be 3-32 characters of A-Z a-z 0-9 _ . -")
            user = User(username=username, nickname=username)
            self._set_password(user, read_password(options.get("stdin") or sys.stdin))
        user.is_staff = True
        user.save()
        user.groups.add(moderators_group())
        self.stdout.write(f"{user.username} (id {user.pk}) is a moderator")
        sys.stdout.flush()

    def _set_password(self, user: User, password: str) -> None:
        if not password:
            raise CommandError("a password is required (prompted for, or one line on standard input)")
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("weak password: " + " ".join(exc.messages)) from exc
        user.set_password(password)
