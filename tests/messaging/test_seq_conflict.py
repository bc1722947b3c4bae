"""The seq-conflict path of persistence, forced on the live stack: a message logic
accepted (and acked) at a seq another stored message holds. INSERT IGNORE skips it;
the worker counts it, logs it and keeps it whole in seq_conflicts, so nothing
acknowledged is silently dropped. (Logic's fence makes this unreachable in operation:
here the counter is rewound by hand behind the fence's back.)"""

import requests

from tests.client import register, single_cid
from tests.conftest import Db
from tests.stack import METRICS_PORTS, Stack, wait_until


def _conflicts_counted() -> float:
    text = requests.get(f"http://127.0.0.1:{METRICS_PORTS['persist']}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("gochat_seq_conflicts_total"))


def test_a_seq_conflict_is_counted_logged_and_kept(stack: Stack, db_reader: Db) -> None:
    from gochat_project.infra import redis_client
    from messaging.models import SeqConflict

    a, b = register("sc"), register("sc")
    cid = single_cid(a, b)
    sock = a.ws()
    first = sock.ack_for(sock.send_message(cid, "first"))
    assert first["seq"] == 1
    db_reader.wait_stored(cid, 1)
    counted = _conflicts_counted()

    redis_client.client().set(redis_client.seq_key(cid), 0)  # Redis forgets the counter, the fence does not notice
    second = sock.ack_for(sock.send_message(cid, "second"))
    assert second["seq"] == 1 and second["message_id"] != first["message_id"]

    def kept() -> SeqConflict | None:
        with db_reader.access():
            return SeqConflict.objects.filter(message_id=int(second["message_id"])).first()

    conflict = wait_until(kept, 30, "the conflicting message in seq_conflicts", interval=0.2)
    assert isinstance(conflict, SeqConflict)
    assert (conflict.conversation_id, conflict.seq, conflict.holder_message_id) == (cid, 1, int(first["message_id"]))
    assert conflict.message["body"] == "second" and conflict.message["client_msg_id"] == second["client_msg_id"]
    assert db_reader.stored(cid) == [(1, first["message_id"], first["client_msg_id"])]  # the holder is untouched
    wait_until(lambda: _conflicts_counted() == counted + 1, 10, "the conflict counted")
    log = stack.persist_worker.log_since_start()
    assert f"seq conflict in {cid} at seq 1: message {second['message_id']} kept in seq_conflicts" in log
    sock.close()
