"""Upload writes: store a file, record where it was sent, clean up what never was."""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from uploads import content
from uploads.models import Upload, UploadAttachment

log = logging.getLogger(__name__)


class UploadRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def upload_create(*, owner_id: int, file: UploadedFile) -> Upload:
    """Store `file` for `owner_id`, typed by its bytes (uploads.content).

    Refuses (UploadRefused) an empty file (400), one over GOCHAT_MAX_UPLOAD_BYTES (413)
    and an image that does not decode (400). The storage name is made of the upload's
    id and the sniffed type's extension: nothing the client chose reaches the storage."""
    size = file.size or 0
    if size == 0:
        raise UploadRefused(400, "The file is empty.")
    if size > settings.GOCHAT_MAX_UPLOAD_BYTES:
        raise UploadRefused(413, f"The file is over {settings.GOCHAT_MAX_UPLOAD_BYTES} bytes.")
    try:
        sniffed = content.sniff(file)
    except content.UnreadableImage as exc:
        raise UploadRefused(400, str(exc)) from exc
    upload = Upload(id=uuid.uuid4(), owner_id=owner_id, name=content.safe_name(file.name), size=size,
                    content_type=sniffed.content_type, width=sniffed.width, height=sniffed.height)
    stem = f"uploads/{timezone.now():%Y/%m}/{upload.id.hex}"
    try:
        upload.file.save(f"{stem}.{sniffed.extension}" if sniffed.extension else stem, file, save=False)
        if sniffed.thumbnail is not None:
            upload.thumbnail.save(f"{stem}-thumb.{sniffed.thumbnail_extension}", ContentFile(sniffed.thumbnail),
                                  save=False)
        upload.save(force_insert=True)
    except Exception:
        _delete_files(upload)
        raise
    return upload


def uploads_attach(*, links: list[tuple[uuid.UUID, str, int, int]]) -> None:
    """Record uploads sent in messages: (upload id, conversation id, message id, seq).

    Idempotent (a batch handled twice adds nothing). From here an upload is kept by
    cleanup, and whoever can read that message may download it."""
    if not links:
        return
    with transaction.atomic():
        UploadAttachment.objects.bulk_create(
            [UploadAttachment(upload_id=u, conversation_id=c, message_id=m, seq=s) for u, c, m, s in links],
            ignore_conflicts=True)
        Upload.objects.filter(pk__in={u for u, _, _, _ in links}, attached_at__isnull=True).update(
            attached_at=timezone.now())


def uploads_cleanup(*, older_than: timedelta) -> int:
    """Delete uploads never sent in a message and older than `older_than`, files included.
    Returns how many. An upload sent meanwhile is kept: each row is deleted only while
    it is still unsent."""
    cutoff = timezone.now() - older_than
    removed = 0
    stale = Upload.objects.filter(attached_at__isnull=True, created_at__lt=cutoff)
    for upload in stale.iterator(chunk_size=500):
        deleted, _ = Upload.objects.filter(pk=upload.pk, attached_at__isnull=True).delete()
        if deleted:
            _delete_files(upload)
            removed += 1
    return removed


def _delete_files(upload: Upload) -> None:
    for field in (upload.file, upload.thumbnail):
        if field.name:
            try:
                field.storage.delete(field.name)
            except OSError:
                log.exception("could not delete %s", field.name)
