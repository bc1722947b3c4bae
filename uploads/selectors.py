"""Upload reads: the protocol's upload object, what a send may attach, who may download."""

import uuid
from collections.abc import Iterable
from typing import Any

from groups.models import GroupMember
from messaging.conversations import ConversationRef, parse_conversation_id
from messaging.models import Message
from uploads.content import IMAGE_TYPES
from uploads.models import Upload

# Keys of a message's `extra` that the server writes from the upload (a client's own
# values for them are replaced), so every reader sees what the bytes really are.
UPLOAD_FIELDS = ("upload_id", "url", "name", "size", "content_type", "width", "height", "thumbnail_url")


def upload_url(upload_id: uuid.UUID) -> str:
    return f"/api/uploads/{upload_id.hex}"


def upload_public(upload: Upload) -> dict[str, Any]:
    """{upload_id, url, name, size, content_type, width?, height?, thumbnail_url?}; URLs are
    paths on the GoChat host and need the caller's Authorization header."""
    out: dict[str, Any] = {"upload_id": upload.id.hex, "url": upload_url(upload.id), "name": upload.name,
                           "size": upload.size, "content_type": upload.content_type}
    if upload.width is not None and upload.height is not None:
        out["width"], out["height"] = upload.width, upload.height
    if upload.thumbnail:
        out["thumbnail_url"] = upload_url(upload.id) + "/thumbnail"
    return out


def is_inline_image(upload: Upload) -> bool:
    return upload.content_type in IMAGE_TYPES


def uploads_by_id(*, upload_ids: Iterable[str]) -> dict[str, Upload]:
    """The uploads that exist among `upload_ids` (32-hex strings), by id, in one query."""
    ids = {uuid.UUID(hex=i) for i in upload_ids}
    return {u.id.hex: u for u in Upload.objects.filter(pk__in=ids)} if ids else {}


def upload_send_refusal(upload: Upload | None, *, sender_id: int, kind: str) -> str | None:
    """Why a message of `kind` by `sender_id` may not carry this upload, or None if it may.
    Someone else's upload reads exactly like an unknown one: ids are no oracle."""
    if upload is None or upload.owner_id != sender_id:
        return "No such upload of yours: upload the file first, then send its upload_id."
    if kind == "image" and not is_inline_image(upload):
        return f"An image message needs a PNG, JPEG, GIF or WebP upload; this one is {upload.content_type}."
    return None


def upload_for_download(*, user_id: int, upload_id: str) -> Upload | None:
    """The upload if `user_id` may download it, else None (unknown and forbidden alike).

    The owner always may; anyone else only if they can read a message that carries it:
    a participant of the 1:1, or a current member of the group who joined before that
    message. A recalled message grants nothing."""
    upload = Upload.objects.filter(pk=uuid.UUID(hex=upload_id)).first()
    if upload is None or upload.owner_id == user_id:
        return upload
    sent = [(parse_conversation_id(cid), message_id, seq)
            for cid, message_id, seq in upload.attachments.values_list("conversation_id", "message_id", "seq")]
    group_ids = {ref.group_id for ref, _, _ in sent if ref is not None and ref.group_id is not None}
    joined = dict(GroupMember.objects.filter(group_id__in=group_ids, user_id=user_id, group__dissolved=False)
                  .values_list("group_id", "joined_seq")) if group_ids else {}

    def readable(ref: ConversationRef | None, seq: int) -> bool:
        if ref is None:
            return False
        if ref.kind == "single":
            return user_id in ref.user_ids
        return ref.group_id in joined and seq > joined[ref.group_id]

    message_ids = {message_id for ref, message_id, seq in sent if readable(ref, seq)}
    if not message_ids:
        return None
    recalled = set(Message.objects.filter(message_id__in=message_ids, recalled=True)
                   .values_list("message_id", flat=True))
    return upload if message_ids - recalled else None
