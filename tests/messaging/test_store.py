"""messaging.services.messages_store on real MySQL: the conversation summary and the
1:1 read states it keeps beside the rows."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from messaging.models import Conversation, ConversationState, Message
from messaging.services import messages_store

pytestmark = pytest.mark.django_db


def _message(cid: str, sender: User, seq: int) -> dict:
    return {"message_id": str(10_000 + seq), "conversation_id": cid, "seq": seq, "sender_id": sender.id,
            "kind": "text", "body": f"m{seq}", "extra": {}, "client_msg_id": f"c-{seq}", "ts": int(time.time() * 1000)}


def test_first_message_creates_both_read_states_and_later_batches_insert_none() -> None:
    alice, bob = (User.objects.create_user(username=n, password="pw-123456789") for n in ("st-a", "st-b"))
    cid = f"s_{min(alice.id, bob.id)}_{max(alice.id, bob.id)}"

    assert messages_store(messages=[_message(cid, alice, 1)]) == 1
    assert set(ConversationState.objects.filter(conversation_id=cid).values_list("user_id", flat=True)) \
        == {alice.id, bob.id}

    with CaptureQueriesContext(connection) as queries:
        assert messages_store(messages=[_message(cid, bob, 2), _message(cid, alice, 3)]) == 2
    assert not [q for q in queries if "conversation_states" in q["sql"]]
    assert ConversationState.objects.filter(conversation_id=cid).count() == 2
    summary = Conversation.objects.get(conversation_id=cid)
    assert (summary.max_seq, summary.last_message_id) == (3, 10_003)

    # A redelivered first batch changes nothing.
    assert messages_store(messages=[_message(cid, alice, 1)]) == 0
    assert Message.objects.filter(conversation_id=cid).count() == 3
    assert ConversationState.objects.filter(conversation_id=cid).count() == 2


def test_a_seq_conflict_is_kept_once_and_a_redelivery_is_none() -> None:
    from messaging import metrics
    from messaging.models import SeqConflict

    alice, bob = (User.objects.create_user(username=n, password="pw-123456789") for n in ("sc-a", "sc-b"))
    cid = f"s_{min(alice.id, bob.id)}_{max(alice.id, bob.id)}"
    held = _message(cid, alice, 1)
    assert messages_store(messages=[held]) == 1
    before = metrics.SEQ_CONFLICTS._value.get()
    assert messages_store(messages=[held]) == 0  # its own redelivery: no conflict
    assert metrics.SEQ_CONFLICTS._value.get() == before and not SeqConflict.objects.exists()

    intruder = {**_message(cid, bob, 1), "message_id": "20001", "client_msg_id": "c-other", "body": "mine"}
    for _ in range(2):  # the second time is the batch redelivered
        assert messages_store(messages=[intruder]) == 0
    conflict = SeqConflict.objects.get()
    assert (conflict.message_id, conflict.holder_message_id, conflict.message["body"]) == (20001, 10_001, "mine")
    assert metrics.SEQ_CONFLICTS._value.get() == before + 1
