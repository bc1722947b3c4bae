"""Attachments: a file a user uploaded, and the conversations it was sent in."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Upload(models.Model):
    """One stored file. `content_type` is what the bytes are (sniffed), never what the
    client claimed; `name` is the client's file name, sanitised, for display only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    file = models.FileField(max_length=255)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    thumbnail = models.FileField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    attached_at = models.DateTimeField(null=True, blank=True, help_text="first sent in a message; kept from then on")

    class Meta:
        db_table = "uploads"
        indexes = [models.Index(fields=["attached_at", "created_at"], name="uploads_unsent_idx")]

    def __str__(self) -> str:
        return f"{self.id.hex} {self.name}"


class UploadAttachment(models.Model):
    """An upload sent in a message: who can read that message's conversation may download it."""

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="attachments")
    conversation_id = models.CharField(max_length=40)
    message_id = models.BigIntegerField()
    seq = models.BigIntegerField()

    class Meta:
        db_table = "upload_attachments"
        constraints = [models.UniqueConstraint(fields=["upload", "message_id"], name="upload_attachment_uniq")]

    def __str__(self) -> str:
        return f"{self.upload_id} in {self.conversation_id}#{self.seq}"
