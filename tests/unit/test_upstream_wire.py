"""The Kafka wire formats (upstream events, downstream deliveries) (messaging/protocol.py): records written by the
release before the typed events must decode, and encoding writes the same bytes, so a
rolling upgrade reads what is in flight either way. The records below are literal bytes of
that release's upstream.py (orjson of its short-key dicts)."""

import orjson
import pytest

from messaging.protocol import (
    EditEvent,
    HideEvent,
    ReadEvent,
    RecallEvent,
    SendEvent,
    TypingEvent,
    decode_deliveries,
    decode_upstream,
    encode_close,
    encode_delivery,
    encode_upstream,
)

RECORDS = [
    (b'{"t":"send","uid":3,"gw":"gw1","conn":"c-9","cid":"s_3_17","client_msg_id":"c-1","body":"hello",'
     b'"kind":"text","extra":{}}',
     SendEvent(3, "s_3_17", "c-1", "hello", "text", {}, "gw1", "c-9")),
    (b'{"t":"send","uid":5,"gw":null,"conn":null,"cid":"g_42","client_msg_id":"bot-1","body":"x",'
     b'"kind":"image","extra":{"upload_id":"0123456789abcdef0123456789abcdef"}}',
     SendEvent(5, "g_42", "bot-1", "x", "image", {"upload_id": "0123456789abcdef0123456789abcdef"})),
    (b'{"t":"read","uid":3,"cid":"s_3_17","seq":12,"conn":"c-9"}', ReadEvent(3, "s_3_17", 12, "c-9")),
    (b'{"t":"read","uid":3,"cid":"g_42","seq":0,"conn":null}', ReadEvent(3, "g_42", 0, None)),
    (b'{"t":"recall","cid":"g_42","mid":"7203348511297536001","seq":4}',
     RecallEvent("g_42", 7203348511297536001, 4)),
    (b'{"t":"typing","uid":17,"cid":"s_3_17"}', TypingEvent(17, "s_3_17")),
    (b'{"t":"hide","uid":3,"cid":"s_3_17","mid":"7203348511297536001"}',
     HideEvent(3, "s_3_17", 7203348511297536001)),
]


@pytest.mark.parametrize(("record", "event"), RECORDS)
def test_records_of_the_previous_release_decode_to_typed_events(record: bytes, event: object) -> None:
    assert decode_upstream(record) == event


@pytest.mark.parametrize(("record", "event"), RECORDS)
def test_encoding_writes_the_same_bytes_as_the_previous_release(record: bytes, event: object) -> None:
    assert encode_upstream(event) == record  # type: ignore[arg-type]


def test_an_event_type_this_release_does_not_know_is_skipped_not_fatal() -> None:
    assert decode_upstream(b'{"t":"poke","uid":1,"cid":"s_1_2"}') is None


def test_a_damaged_record_raises_for_the_consumer_to_skip() -> None:
    with pytest.raises(ValueError):
        decode_upstream(b'{"t":"send"')
    with pytest.raises(KeyError):
        decode_upstream(b'{"t":"read","cid":"s_1_2","seq":1}')


DOWNSTREAM = (b'[{"f":"{\\"type\\":\\"ack\\"}","c":["c-9"]},'
              b'{"f":"{\\"type\\":\\"message\\"}","u":[3,17],"x":"c-9"},{"f":"{\\"type\\":\\"typing\\"}","u":[17]}]')


# v1.1 records: a send's reply and mentions ride in keys written only when present (so a
# plain send keeps the bytes above), and an edit notice is a new event type.
V11_RECORDS = [
    (b'{"t":"send","uid":3,"gw":"gw1","conn":"c-9","cid":"g_42","client_msg_id":"c-2","body":"@17 yes",'
     b'"kind":"text","extra":{},"rt":"7203348511297536001","mn":[17,5]}',
     SendEvent(3, "g_42", "c-2", "@17 yes", "text", {}, "gw1", "c-9", 7203348511297536001, [17, 5])),
    (b'{"t":"edit","cid":"s_3_17","mid":"7203348511297536001","seq":4,"body":"fixed","at":1800000000000}',
     EditEvent("s_3_17", 7203348511297536001, 4, "fixed", 1800000000000)),
]


@pytest.mark.parametrize(("record", "event"), V11_RECORDS)
def test_v11_records_round_trip(record: bytes, event: object) -> None:
    assert decode_upstream(record) == event
    assert encode_upstream(event) == record  # type: ignore[arg-type]


def test_downstream_records_of_the_previous_release_decode_and_encode_the_same() -> None:
    assert decode_deliveries(DOWNSTREAM) == [('{"type":"ack"}', (), ["c-9"], None, None),
                                             ('{"type":"message"}', [3, 17], (), "c-9", None),
                                             ('{"type":"typing"}', [17], (), None, None)]
    assert orjson.dumps([encode_delivery('{"type":"ack"}', conn_ids=["c-9"]),
                         encode_delivery('{"type":"message"}', user_ids=[3, 17], skip_conn="c-9"),
                         encode_delivery('{"type":"typing"}', user_ids=[17])]) == DOWNSTREAM


# Control items (a ban's 4403 on every gateway, the connection cap's 4409), as the
# Redis-Cluster release writes them instead of channel-layer messages.
CONTROL = b'[{"k":4403,"u":[3]},{"k":4409,"c":["c-1","c-2"]}]'


def test_control_items_decode_as_closes_and_encode_the_same() -> None:
    assert decode_deliveries(CONTROL) == [(None, [3], (), None, 4403), (None, (), ["c-1", "c-2"], None, 4409)]
    assert orjson.dumps([encode_close(4403, user_ids=[3]), encode_close(4409, conn_ids=["c-1", "c-2"])]) == CONTROL
