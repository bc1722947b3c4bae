from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from accounts.models import User


def user_register(*, username: str, password: str, nickname: str = "") -> User:
    """Create a user; usernames are unique case-insensitively."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": ["This username is taken."]})
    user = User(username=username, nickname=nickname or username)
    try:
        validate_password(password, user)
    except Exception as exc:  # django ValidationError -> DRF field error
        raise ValidationError({"password": list(getattr(exc, "messages", [str(exc)]))}) from exc
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent register of the same name
        raise ValidationError({"username": ["This username is taken."]}) from exc
    return user


def user_control_group(user_id: int) -> str:
    """Channel-layer group reaching every socket of a user, on every gateway."""
    return f"user.{user_id}"


def users_ban(*, user_ids: list[int]) -> None:
    """Deactivate users and close their live sockets everywhere with 4403.

    Login and refresh stop at once (both check is_active); logic rejects queued
    sends from them because it checks is_active per batch.
    """
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from messaging.protocol import CLOSE_BANNED

    User.objects.filter(pk__in=user_ids).update(is_active=False)
    layer = get_channel_layer()
    for user_id in user_ids:
        async_to_sync(layer.group_send)(user_control_group(user_id), {"type": "control.kick", "code": CLOSE_BANNED})


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
