from django.conf import settings
from django.db import models


class Group(models.Model):
    name = models.CharField(max_length=64)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    dissolved = models.BooleanField(default=False)
    member_count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "groups"

    def __str__(self) -> str:
        return f"{self.name} ({self.conversation_id})"

    @property
    def conversation_id(self) -> str:
        from messaging.conversations import group_conversation_id

        return group_conversation_id(self.pk)


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class GroupMember(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_seq = models.BigIntegerField(default=0, help_text="history starts after this seq")
    muted = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "group_members"
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="group_member_uniq")]
        indexes = [models.Index(fields=["user"], name="group_members_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} in g_{self.group_id} ({self.role})"
