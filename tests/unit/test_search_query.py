"""The pure parts of message search: what is indexed, and how a user's query becomes
Groonga's query (no operator of the user's text may take effect)."""

from messaging.search import search_expression, search_text


def test_every_term_is_a_required_quoted_phrase() -> None:
    assert search_expression("hello  明天见\u3000World") == '*D+ "hello" "明天见" "World"'


def test_quotes_and_backslashes_are_escaped() -> None:
    assert search_expression('a"b c\\') == '*D+ "a\\"b" "c\\\\"'
    assert search_expression("OR -x +y (z) *D-") == '*D+ "OR" "-x" "+y" "(z)" "*D-"'


def test_text_bodies_captions_and_file_names_are_indexed_custom_is_not() -> None:
    assert search_text(kind="text", body="hi", extra={"name": "x.txt"}) == "hi"
    assert search_text(kind="file", body="the report", extra={"name": "q3.pdf"}) == "the report\nq3.pdf"
    assert search_text(kind="image", body="", extra={"name": "cat.png"}) == "\ncat.png"
    assert search_text(kind="image", body="", extra={}) is None
    assert search_text(kind="custom", body='{"card": 1}', extra={}) is None
    assert search_text(kind="text", body="  ", extra=None) is None
