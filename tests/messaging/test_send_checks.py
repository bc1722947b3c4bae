"""messaging.selectors.send_checks: logic's per-batch reads in one round trip, on real MySQL."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Block, User
from messaging.models import Message
from messaging.selectors import send_checks

pytestmark = pytest.mark.django_db


def _users(n: int) -> list[User]:
    return [User.objects.create_user(username=f"sc{i}", password="pw-123456789") for i in range(n)]


def test_send_checks_answers_activity_blocks_and_stored_resends_in_one_query() -> None:
    alice, bob, carol, banned = _users(4)
    banned.is_active = False
    banned.save()
    Block.objects.create(blocker=bob, blocked=alice)
    Block.objects.create(blocker=carol, blocked=bob)  # not asked about: must not be reported
    cid = f"s_{alice.id}_{bob.id}"
    Message.objects.create(message_id=77, conversation_id=cid, seq=3, sender=alice,
                           body="hi", client_msg_id="m-1", ts=1000)

    with CaptureQueriesContext(connection) as queries:
        checks = send_checks(user_ids={alice.id, bob.id, banned.id},
                             pairs={(bob.id, alice.id), (alice.id, bob.id)},
                             resends={(alice.id, cid, "m-1"), (alice.id, cid, "m-2"), (bob.id, cid, "m-1"),
                                      (alice.id, "g_1", "m-1")})

    assert len(queries) == 1
    assert checks.active_user_ids == {alice.id, bob.id}
    assert checks.blocks == {(bob.id, alice.id)}
    # Per conversation: the same client_msg_id in g_1 is another message, not a resend.
    assert checks.stored == {(alice.id, cid, "m-1"): (77, 3, 1000, cid)}


def test_send_checks_with_nothing_to_ask_runs_no_query() -> None:
    with CaptureQueriesContext(connection) as queries:
        checks = send_checks(user_ids=set(), pairs=set(), resends=set())
    assert not queries
    assert (checks.active_user_ids, checks.blocks, checks.stored) == (set(), set(), {})
