from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"


class User(AbstractUser):
    """A GoChat user. Banning is deactivation (is_active=False)."""

    username = models.CharField(
        max_length=32,
        unique=True,
        validators=[RegexValidator(USERNAME_PATTERN, "3-32 characters of A-Z a-z 0-9 _ . -")],
    )
    nickname = models.CharField(max_length=64, blank=True, default="")
    # When the user's last device went away (ms since the epoch, as the protocol's times);
    # null until then. Written by the gateways in batches (accounts.services.users_last_seen_record).
    last_seen = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "users"
        constraints = [
            models.UniqueConstraint(Lower("username"), name="users_username_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.username


class Block(models.Model):
    """`blocker` does not want 1:1 messages (or typing) from `blocked`. Private to the blocker."""

    blocker = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    blocked = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "blocks"
        constraints = [models.UniqueConstraint(fields=["blocker", "blocked"], name="block_uniq")]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"
