from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User


def user_register(*, username: str, password: str, nickname: str = "") -> User:
    """Create a user; usernames are unique case-insensitively."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": ["This username is taken."]})
    user = User(username=username, nickname=nickname or username)
    _check_password_strength(password, user, field="password")
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent register of the same name
        raise ValidationError({"username": ["This username is taken."]}) from exc
    return user


def _check_password_strength(password: str, user: User, *, field: str) -> None:
    """Django's AUTH_PASSWORD_VALIDATORS, their messages as a DRF error on `field`."""
    try:
        validate_password(password, user)
    except Exception as exc:  # django ValidationError -> DRF field error
        raise ValidationError({field: list(getattr(exc, "messages", [str(exc)]))}) from exc


def user_profile_update(*, user: User, nickname: str | None = None) -> User:
    """Change what is given. A blank nickname means "show my username", as at registration."""
    if nickname is not None:
        user.nickname = nickname or user.username
        user.save(update_fields=["nickname"])
    return user


def user_password_change(*, user: User, old_password: str, new_password: str) -> None:
    """Set a new password and revoke every refresh token of the user, on every device.

    Access tokens are left alone: they live minutes (GOCHAT_ACCESS_TOKEN_MINUTES) and
    sockets are authorised by them, so open sessions run out at their expiry, as after
    a logout. The caller logs in again with the new password for a new token pair."""
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["Wrong password."]})
    _check_password_strength(new_password, user, field="new_password")
    with transaction.atomic():
        # The row lock orders this change against a refresh rotating one of the user's
        # tokens (RefreshSerializer takes the same lock): that rotation's new token is
        # either committed before the revocation below reads the outstanding tokens, or
        # the rotation runs afterwards and finds its token blacklisted.
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.set_password(new_password)
        locked.save(update_fields=["password"])
        refresh_tokens_revoke(user_id=user.pk)
    user.password = locked.password


def refresh_tokens_revoke(*, user_id: int) -> int:
    """Blacklist every unexpired refresh token of the user; returns how many were live.

    Every refresh token is in OutstandingToken: login issues them through
    RefreshToken.for_user and rotation records the new one (simplejwt's outstand())."""
    live = (OutstandingToken.objects.filter(user_id=user_id, expires_at__gt=timezone.now(),
                                            blacklistedtoken__isnull=True)
            .values_list("pk", flat=True))
    rows = [BlacklistedToken(token_id=pk) for pk in live]
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent logout may win one
    return len(rows)


def users_ban(*, user_ids: list[int]) -> None:
    """Deactivate users and close their live sockets everywhere with 4403.

    Login and refresh stop at once (both check is_active); logic rejects queued
    sends from them because it checks is_active per batch. The close travels as a
    control record on each gateway's downstream topic, like every push.
    """
    from fanout import presence
    from fanout.downstream import Deliveries, control_produce
    from messaging.protocol import CLOSE_BANNED

    User.objects.filter(pk__in=user_ids).update(is_active=False)
    kicks = Deliveries()
    for gateway_id in sorted(presence.gateways_to_reach(user_ids)):
        kicks.kick_users(gateway_id, CLOSE_BANNED, user_ids)
    control_produce(kicks)


def users_unban(*, user_ids: list[int]) -> None:
    User.objects.filter(pk__in=user_ids).update(is_active=True)


def user_block(*, blocker_id: int, blocked_id: int) -> None:
    from accounts.models import Block

    if blocker_id == blocked_id:
        raise ValidationError({"detail": "You cannot block yourself."})
    Block.objects.get_or_create(blocker_id=blocker_id, blocked_id=blocked_id)


def user_unblock(*, blocker_id: int, blocked_id: int) -> None:
    from accounts.models import Block

    Block.objects.filter(blocker_id=blocker_id, blocked_id=blocked_id).delete()


def users_last_seen_record(*, seen: dict[int, int]) -> None:
    """Store user id -> last_seen (ms) for a batch of users who went offline, in one
    UPDATE: a gateway restart sends thousands at once, one statement per user would queue
    that many round trips behind each other. A value never moves backwards (a late batch
    from a slow gateway must not undo a newer one)."""
    if not seen:
        return
    from django.db.models import Case, IntegerField, Value, When
    from django.db.models.functions import Coalesce, Greatest

    new = Case(*(When(pk=uid, then=Value(ms)) for uid, ms in seen.items()), output_field=IntegerField())
    User.objects.filter(pk__in=list(seen)).update(
        last_seen=Greatest(new, Coalesce("last_seen", Value(0))))  # MySQL's GREATEST(x, NULL) is NULL
