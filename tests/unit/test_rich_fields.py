"""The v1.1 send and edit fields as messaging/protocol.py validates them (pure functions;
the live-stack tests are tests/messaging/test_edit.py and test_reply_mentions.py)."""

import pytest

from messaging.protocol import MAX_BODY_CHARS, MAX_MENTIONS, AppError, parse_frame, validate_message_fields

SEND = {"client_msg_id": "c-1", "conversation_id": "s_1_2", "body": "hi"}


def test_a_plain_send_has_no_reply_and_no_mentions() -> None:
    fields = validate_message_fields(dict(SEND))
    assert (fields["reply_to"], fields["mentions"]) == (None, [])


def test_reply_to_and_mentions_are_normalised() -> None:
    fields = validate_message_fields({**SEND, "reply_to": "7203348511297536001", "mentions": [2, 1, 2]})
    assert (fields["reply_to"], fields["mentions"]) == (7203348511297536001, [2, 1])
    assert validate_message_fields({**SEND, "mentions": [1] * MAX_MENTIONS})["mentions"] == [1]


@pytest.mark.parametrize("field", [{"reply_to": 5}, {"reply_to": ""}, {"reply_to": "1" * 21}, {"reply_to": "\u0661"},
                                   {"mentions": [1] * (MAX_MENTIONS + 1)}, {"mentions": [True]},
                                   {"mentions": [0]}, {"mentions": [2**63]}, {"mentions": "1"},
                                   {"mentions": [1.0]}])
def test_bad_reply_to_or_mentions_are_invalid_with_the_client_msg_id(field: dict[str, object]) -> None:
    with pytest.raises(AppError) as err:
        validate_message_fields({**SEND, **field})
    assert (err.value.code, err.value.client_msg_id) == ("invalid", "c-1")


def test_edit_frames() -> None:
    assert parse_frame('{"type":"edit","message_id":"42","body":" new "}') == {
        "type": "edit", "message_id": 42, "body": " new "}
    for bad in ('{"type":"edit","message_id":42,"body":"x"}', '{"type":"edit","message_id":"42","body":" \\n"}',
                '{"type":"edit","message_id":"42"}', '{"type":"edit","message_id":"42","body":"%s"}'
                % ("x" * (MAX_BODY_CHARS + 1))):
        with pytest.raises(AppError) as err:
            parse_frame(bad)
        assert err.value.code == "invalid", bad
