"""The `react` frame and the emoji rule (messaging/protocol.py), as pure functions."""

import json

import pytest

from messaging.protocol import AppError, parse_frame, validate_emoji


@pytest.mark.parametrize("emoji", ["👍", "thumbs_up", "👨‍👩‍👧", "❤️", "x" * 32, "a/b", "+1", "🇫🇷"])
def test_emoji_of_one_to_32_characters_without_space_or_control_is_taken(emoji: str) -> None:
    assert validate_emoji(emoji) == emoji


@pytest.mark.parametrize("emoji", ["", "x" * 33, "a b", "\t", "ok\n", "\x00", "\x7f", "\x85", "\u00a0", "\u2028",
                                   "\u3000", "\ud83d", None, 1, ["👍"], {"e": "👍"}])
def test_emoji_with_space_control_or_out_of_length_is_invalid(emoji: object) -> None:
    with pytest.raises(AppError) as err:
        validate_emoji(emoji)
    assert err.value.code == "invalid"


def test_react_frame_parses_to_its_fields() -> None:
    frame = parse_frame(json.dumps({"type": "react", "message_id": "7203348511297536001", "emoji": "👍", "op": "add"}))
    assert frame == {"type": "react", "message_id": 7203348511297536001, "emoji": "👍", "op": "add"}


@pytest.mark.parametrize("bad", [{"op": "toggle"}, {"op": None}, {"message_id": 5}, {"message_id": "12a"},
                                 {"message_id": "1" * 21}, {"emoji": ""}, {"emoji": "a b"}])
def test_react_frame_with_a_bad_field_is_invalid(bad: dict[str, object]) -> None:
    frame = {"type": "react", "message_id": "1", "emoji": "👍", "op": "remove", **bad}
    with pytest.raises(AppError) as err:
        parse_frame(json.dumps(frame))
    assert err.value.code == "invalid"


def test_a_reaction_in_a_large_group_is_one_fan_out_job_not_a_push_per_member(settings) -> None:
    from groups.selectors import RoutingGroup
    from messaging.conversations import parse_conversation_id
    from messaging.logic.routing import _to_every_member

    settings.GOCHAT_LARGE_GROUP_THRESHOLD = 50
    ref = parse_conversation_id("g_7")
    assert ref is not None
    pushes: list = []
    large: list = []
    _to_every_member("frame", ref, {7: RoutingGroup(7, 100_000, {})}, pushes, large)
    assert (pushes, large) == ([], [(7, "frame")])
    _to_every_member("frame", ref, {7: RoutingGroup(7, 3, dict.fromkeys([1, 2, 3]))}, pushes, large)
    assert pushes == [("frame", [1, 2, 3], None)]
    single = parse_conversation_id("s_3_17")
    assert single is not None
    _to_every_member("frame", single, {}, pushes, large)
    assert pushes[-1] == ("frame", [3, 17], None) and len(large) == 1
