"""Read diffusion: a message is stored once per conversation, never per member."""

from django.conf import settings
from django.db import models


class MessageKind(models.TextChoices):
    TEXT = "text"
    IMAGE = "image"
    FILE = "file"
    CUSTOM = "custom"


class Message(models.Model):
    message_id = models.BigIntegerField(primary_key=True)  # snowflake from logic
    conversation_id = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING,
                               db_constraint=False, related_name="+")
    kind = models.CharField(max_length=8, choices=MessageKind.choices, default=MessageKind.TEXT)
    body = models.TextField(blank=True)
    extra = models.JSONField(default=dict, blank=True)
    client_msg_id = models.CharField(max_length=64)
    ts = models.BigIntegerField(help_text="ms since the epoch, UTC")
    recalled = models.BooleanField(default=False)
    edited_at = models.BigIntegerField(null=True, blank=True, help_text="ms of the last edit; null if never edited")
    reply_to = models.JSONField(null=True, blank=True, help_text="{message_id, seq, sender_id} replied to")
    # Nullable, no default: raw INSERTs that predate it (bench, seeding) stay valid; null reads as [].
    mentions = models.JSONField(null=True, blank=True, help_text="user ids mentioned at send time")

    class Meta:
        db_table = "messages"
        constraints = [
            models.UniqueConstraint(fields=["conversation_id", "seq"], name="messages_conv_seq_uniq"),
            # Idempotency: a resend repeats all three (the Redis record is per conversation too).
            models.UniqueConstraint(fields=["sender", "conversation_id", "client_msg_id"],
                                    name="messages_sender_conv_cmid_uniq"),
        ]
        indexes = [models.Index(fields=["ts"], name="messages_ts_idx")]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq}"


class Conversation(models.Model):
    """Per-conversation summary kept by the persistence task (max_seq, last message)."""

    conversation_id = models.CharField(max_length=40, primary_key=True)
    max_seq = models.BigIntegerField(default=0)
    last_message_id = models.BigIntegerField(null=True)
    last_ts = models.BigIntegerField(default=0)

    class Meta:
        db_table = "conversations"

    def __str__(self) -> str:
        return self.conversation_id


class ConversationState(models.Model):
    """A user's view of a conversation: how far they have read."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation_id = models.CharField(max_length=40)
    read_seq = models.BigIntegerField(default=0)
    muted = models.BooleanField(default=False, db_default=False)  # raw upserts leave it out
    pinned_at = models.BigIntegerField(null=True, blank=True, help_text="ms; set while pinned")

    class Meta:
        db_table = "conversation_states"
        constraints = [
            models.UniqueConstraint(fields=["user", "conversation_id"], name="conv_state_user_conv_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.conversation_id}: {self.read_seq}"


class HiddenMessage(models.Model):
    """Delete-for-me: a message hidden from one user's history (no copy of the message)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    message_id = models.BigIntegerField()
    conversation_id = models.CharField(max_length=40)

    class Meta:
        db_table = "hidden_messages"
        constraints = [models.UniqueConstraint(fields=["user", "message_id"], name="hidden_user_message_uniq")]
        indexes = [models.Index(fields=["user", "conversation_id"], name="hidden_user_conv_idx")]

    def __str__(self) -> str:
        return f"{self.message_id} hidden for {self.user_id}"


class MessageMention(models.Model):
    """One mention of a user by a message, for `unread_mentions` in the conversation list.

    Why a table and not a scan of `messages.mentions`: the list answers every
    conversation of the caller at once, and a JSON scan of every unread message would
    grow with unread traffic (thousands of rows in a busy group). This table holds a row
    only per (message, mentioned user), written in the persistence batch that stores the
    message (no row for a sender mentioning themself), and the (user, conversation, seq)
    index finds the caller's mentions above their read_seq directly: the list reads only
    the caller's unread mentions, usually none. Recalled and deleted-for-me messages are
    excluded when counting (a join on `messages` by primary key and on `hidden_messages`),
    so a recall or hide needs no write here. EXPLAIN with 200,000 messages and 20,000
    mentions: a range on mention_user_conv_seq_idx (the caller's rows above read_seq
    only), then one primary-key and one unique-key lookup per row found."""

    message_id = models.BigIntegerField()
    conversation_id = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    user_id = models.BigIntegerField()

    class Meta:
        db_table = "message_mentions"
        constraints = [models.UniqueConstraint(fields=["message_id", "user_id"], name="mention_message_user_uniq")]
        indexes = [models.Index(fields=["user_id", "conversation_id", "seq"], name="mention_user_conv_seq_idx")]

    def __str__(self) -> str:
        return f"{self.message_id} mentions {self.user_id}"


class SeqConflict(models.Model):
    """An accepted (acknowledged) message persistence could not store because another
    message already held its (conversation, seq): the seq fence was bypassed. It must
    never happen (gochat_seq_conflicts_total stays 0); if it does, the message is kept
    here whole, for the operator, rather than dropped (docs/operations.md)."""

    message_id = models.BigIntegerField(primary_key=True)
    conversation_id = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    holder_message_id = models.BigIntegerField(help_text="the message stored at this seq")
    message = models.JSONField(help_text="the message as logic accepted it")
    detected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "seq_conflicts"

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq}: {self.message_id} vs {self.holder_message_id}"
