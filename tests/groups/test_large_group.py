"""A 100,000-member group built with the seed command, and a message that reaches
every online member through the chunked Celery fan-out."""

import subprocess
import sys
import time
import uuid

import pytest

from tests.client import Socket, User
from tests.stack import ROOT

ONLINE = 200


@pytest.mark.usefixtures("stack")
def test_hundred_thousand_member_group_seeded_and_delivered(db_reader) -> None:
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User as UserModel
    from groups.models import Group

    prefix = f"k{uuid.uuid4().hex[:6]}_"
    started = time.monotonic()
    out = subprocess.run([sys.executable, "manage.py", "seed_demo", "--users", "100000", "--group-size", "100000",
                          "--prefix", prefix, "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    seeded_in = time.monotonic() - started
    assert out.returncode == 0, out.stderr  # how fast it seeds is measured by `make bench`, not asserted here
    with db_reader.access():
        group = Group.objects.get(owner__username=f"{prefix}0")
        assert group.member_count == 100000 == group.members.count()
        # Online: the owner and ONLINE members spread over the member id range and both gateways.
        step = 100000 // ONLINE
        rows = list(UserModel.objects.filter(username__in=[f"{prefix}{i}" for i in range(0, 100000, step)]))
        users = [User(u.pk, u.username, str(AccessToken.for_user(u)), "") for u in rows]
    owner = next(u for u in users if u.username == f"{prefix}0")
    sockets = [Socket.open(u.access, "tgw1" if i % 2 else "tgw2") for i, u in enumerate(users)]
    sender = Socket.open(owner.access)
    sent = time.monotonic()
    cmid = sender.send_message(group.conversation_id, "hello hundred thousand")
    ack = sender.ack_for(cmid, timeout=30)
    assert ack["type"] == "ack"
    last = 0.0
    for sock in sockets:
        assert sock.message(timeout=60)["message_id"] == ack["message_id"]
        last = time.monotonic()
    print(f"\n100k group: seeded in {seeded_in:.1f}s; send -> last of {len(sockets)} online members "
          f"received in {(last - sent) * 1000:.0f} ms")
