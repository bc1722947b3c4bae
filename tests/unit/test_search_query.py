"""The pure parts of message search: what is indexed, and the Groonga script a search
runs (no character of the user's text may act as an operator; the scope is built from
integers only)."""

from messaging.conversations import parse_conversation_id
from messaging.search import match_expression, scope_expression, search_text


def test_every_term_must_match_as_a_quoted_string() -> None:
    assert match_expression("hello  明天见\u3000World") == 'body @ "hello" && body @ "明天见" && body @ "World"'


def test_quotes_and_backslashes_are_escaped() -> None:
    assert match_expression('a"b c\\') == 'body @ "a\\"b" && body @ "c\\\\"'
    assert match_expression('|| x") || true') == 'body @ "||" && body @ "x\\")" && body @ "||" && body @ "true"'


def test_scope_is_the_users_1to1s_and_groups() -> None:
    assert scope_expression(user_id=7, group_ids=[9, 3, 4], ref=None) == (
        "(user_lo == 7 || user_hi == 7 || in_values(group_id, 3, 4, 9))")
    assert scope_expression(user_id=7, group_ids=[], ref=None) == "(user_lo == 7 || user_hi == 7)"


def test_scope_of_one_conversation() -> None:
    assert scope_expression(user_id=7, group_ids=[9], ref=parse_conversation_id("s_3_7")) == (
        "(user_lo == 3 && user_hi == 7)")
    assert scope_expression(user_id=7, group_ids=[9], ref=parse_conversation_id("g_9")) == "group_id == 9"


def test_text_bodies_captions_and_file_names_are_indexed_custom_is_not() -> None:
    assert search_text(kind="text", body="hi", extra={"name": "x.txt"}) == "hi"
    assert search_text(kind="file", body="the report", extra={"name": "q3.pdf"}) == "the report\nq3.pdf"
    assert search_text(kind="image", body="", extra={"name": "cat.png"}) == "\ncat.png"
    assert search_text(kind="image", body="", extra={}) is None
    assert search_text(kind="custom", body='{"card": 1}', extra={}) is None
    assert search_text(kind="text", body="  ", extra=None) is None
