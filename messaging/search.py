"""Message search: a Mroonga full-text index beside `messages`, fed by persistence.

Why Mroonga (MariaDB's Groonga storage engine, Debian's `mariadb-plugin-mroonga`):
InnoDB's FULLTEXT splits on spaces and punctuation, so it finds no substring of
Chinese or Japanese text; Mroonga's TokenBigram indexes CJK text as overlapping
character pairs (`明天见` is found in `我们明天见面吧` by phrase search over `明天`,
`天见`) and alphabetic runs as whole words, NormalizerAuto folds case. Being a table
in the same MariaDB, the caller's authorization goes into the same SQL statement as
the match, with no second system to feed, back up or keep consistent
(docs/architecture.md, "Search", has the alternatives and the figures).

The index holds one row per searchable message: its current searchable text
(`search_text`), and what authorization filters on: the 1:1's two user ids or the
group id, and the seq (a group's history starts after the member's join seq).
- Persistence adds a batch's rows with one multi-row INSERT IGNORE
  (`search_index_add`), so a redelivered batch never puts back an edited body.
- A recall removes the row (`search_index_remove`).
- An edit calls `search_index_replace` with the new body.
- `manage.py rebuild_search_index` rebuilds it from `messages`.

A search is one Groonga script (Mroonga's `*SS` pragma) holding the match AND the
caller's conversations, so Groonga itself returns only the caller's newest matches in
order (Mroonga's "fast ORDER BY LIMIT": no row of other people's conversations reaches
MariaDB, whatever the number of matches). Group join floors, delete-for-me and recalls
are then checked on that page's rows against `messages` and `hidden_messages` (a
`seq > floor` per group inside the script made Groonga scan: 132 ms instead of 47 ms
at 1,000,000 messages).

Mroonga tables are not transactional: a row written inside a transaction that rolls
back stays. That is safe here because a result is returned only with its stored,
unrecalled `messages` row, and persistence retries its whole batch idempotently.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

from groups.models import GroupMember
from messaging.conversations import ConversationRef, parse_conversation_id
from messaging.models import Conversation, ConversationState, HiddenMessage, Message, MessageKind

SEARCH_TABLE = "message_search"
# Text bodies, and the caption and file name of attachments (both are in the stored
# message already, so indexing them costs nothing more). `custom` bodies are opaque to
# the server and are not indexed.
INDEXED_KINDS = frozenset({MessageKind.TEXT, MessageKind.IMAGE, MessageKind.FILE})
QUERY_MAX_CHARS = 100  # PROTOCOL.md, v1.1 "Search"

CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {SEARCH_TABLE} ("
    " message_id BIGINT NOT NULL PRIMARY KEY,"
    " conversation_id VARCHAR(40) NOT NULL,"
    " seq BIGINT NOT NULL,"
    " group_id BIGINT NOT NULL DEFAULT 0,"  # 0 for a 1:1
    " user_lo BIGINT NOT NULL DEFAULT 0,"  # a 1:1's two users (0 for a group)
    " user_hi BIGINT NOT NULL DEFAULT 0,"
    " body TEXT NOT NULL,"
    # Groonga uses these for the scope of a search (user_lo == 7 || ...): without them it
    # evaluated the scope row by row over the whole table (140 ms at 100,000 rows, 15 ms with).
    " KEY message_search_user_lo (user_lo), KEY message_search_user_hi (user_hi),"
    " KEY message_search_group (group_id),"
    # TokenBigram: CJK as character pairs, runs of letters or digits as one token;
    # NormalizerAuto: case folding (and full-width/half-width forms) at index and query time.
    " FULLTEXT INDEX message_search_body (body) COMMENT 'tokenizer \"TokenBigram\", normalizer \"NormalizerAuto\"'"
    ") ENGINE=Mroonga DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
)
_COLUMNS = "message_id, conversation_id, seq, group_id, user_lo, user_hi, body"
_VALUES = "%s, %s, %s, %s, %s, %s, %s"

Row = tuple[int, str, int, int, int, int, str]


class SearchUnavailable(RuntimeError):
    """The database server cannot run Mroonga (the plugin is not installed on its machine)."""


def mroonga_ensure(cursor: Any) -> None:
    """Load the Mroonga engine into this MariaDB if it is not loaded (idempotent).

    Needs the plugin's library on the server's machine (Debian: mariadb-plugin-mroonga,
    which `manage.py services up` installs for a local server) and, the first time, a
    user allowed to INSERT into mysql.plugin (docs/operations.md, "Search")."""
    cursor.execute("SELECT SUPPORT FROM information_schema.ENGINES WHERE ENGINE = 'Mroonga'")
    row = cursor.fetchone()
    if row is not None and row[0] in ("YES", "DEFAULT"):
        return
    try:
        cursor.execute("INSTALL SONAME 'ha_mroonga'")
    except Exception as exc:  # the driver's error class depends on the backend
        raise SearchUnavailable(
            "MariaDB cannot load Mroonga (needed by message search): install the server's "
            f"mariadb-plugin-mroonga package, then migrate again ({exc})") from exc


def search_text(*, kind: str, body: str, extra: dict[str, Any] | None) -> str | None:
    """What the index holds for a message, or None when the message is not searchable."""
    if kind not in INDEXED_KINDS:
        return None
    name = (extra or {}).get("name") if kind != MessageKind.TEXT else None
    text = f"{body}\n{name}" if isinstance(name, str) and name else body
    return text if text.strip() else None


def _row(message_id: int, conversation_id: str, seq: int, text: str) -> Row | None:
    ref = parse_conversation_id(conversation_id)
    if ref is None:
        return None
    lo, hi = ref.user_ids if ref.kind == "single" else (0, 0)
    return (message_id, conversation_id, seq, ref.group_id or 0, lo, hi, text)


def _index_rows(messages: Iterable[dict[str, Any]]) -> list[Row]:
    rows = []
    for m in messages:
        text = search_text(kind=m["kind"], body=m["body"], extra=m.get("extra"))
        row = _row(int(m["message_id"]), m["conversation_id"], int(m["seq"]), text) if text is not None else None
        if row is not None:
            rows.append(row)
    return rows


def search_index_add(*, messages: Sequence[dict[str, Any]]) -> None:
    """Index a batch of just-stored messages (persistence's format) in one multi-row
    INSERT IGNORE: a message already indexed keeps its row (a redelivered batch does not
    put back a body that an edit has replaced since)."""
    rows = _index_rows(messages)
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT IGNORE INTO {SEARCH_TABLE} ({_COLUMNS}) VALUES ({_VALUES})", rows)


def search_index_replace(*, message_id: int, conversation_id: str, seq: int, kind: str, body: str,
                         extra: dict[str, Any] | None = None) -> None:
    """Index a message's current body, replacing what was indexed: what an edit calls
    once the new body is stored. Safe before the message's own persistence: that batch's
    INSERT IGNORE then keeps this row."""
    text = search_text(kind=kind, body=body, extra=extra)
    row = _row(message_id, conversation_id, seq, text) if text is not None else None
    if row is None:
        search_index_remove(message_ids=[message_id])
        return
    with connection.cursor() as cursor:
        cursor.execute(f"REPLACE INTO {SEARCH_TABLE} ({_COLUMNS}) VALUES ({_VALUES})", list(row))


def search_index_remove(*, message_ids: Sequence[int]) -> None:
    """Take messages out of the index (a recall)."""
    if message_ids:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {SEARCH_TABLE} WHERE message_id IN ({', '.join(['%s'] * len(message_ids))})",
                           list(message_ids))


def search_index_rebuild(*, batch: int = 5000, truncate: bool = False) -> int:
    """Index every stored, unrecalled message again from `messages` with its current body,
    and drop the rows of recalled messages. Returns how many messages were indexed.

    In place by default: searches keep working while it runs, and persistence may keep
    writing (both write a message's current body). `truncate` empties the index first
    (searches miss what is not re-indexed yet): for an index that was lost or damaged."""
    with connection.cursor() as cursor:
        if truncate:
            cursor.execute(f"TRUNCATE TABLE {SEARCH_TABLE}")
        else:
            cursor.execute(f"DELETE s FROM {SEARCH_TABLE} s JOIN {Message._meta.db_table} m "
                           "ON m.message_id = s.message_id WHERE m.recalled")
    indexed, after = 0, -(2 ** 63)
    fields = ("message_id", "conversation_id", "seq", "kind", "body", "extra")
    while True:
        chunk = list(Message.objects.filter(message_id__gt=after, recalled=False)
                     .order_by("message_id").values(*fields)[:batch])
        if not chunk:
            return indexed
        rows = _index_rows(chunk)
        if rows:
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {SEARCH_TABLE} ({_COLUMNS}) VALUES ({_VALUES}) "
                                   "ON DUPLICATE KEY UPDATE body = VALUES(body)", rows)
        indexed += len(rows)
        after = chunk[-1]["message_id"]


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def match_expression(query: str) -> str:
    """Groonga's script for the user's text: every whitespace-separated term must match,
    each a quoted string so that no character of it is an operator. A CJK term matches
    as a substring (a phrase of its character pairs); a term in letters matches words
    that begin with it (Groonga prefix-matches a term's last token)."""
    return " && ".join(f"body @ {_literal(t)}" for t in query.split())


def scope_expression(*, user_id: int, group_ids: Iterable[int], ref: ConversationRef | None) -> str:
    """Groonga's script for "a message in one of the user's conversations": their 1:1s
    and `group_ids`, or with `ref` that conversation only (the caller has been checked
    to read it). Join floors are not in it: `_readable` applies them (below)."""
    if ref is not None and ref.kind == "single":
        lo, hi = ref.user_ids
        return f"(user_lo == {int(lo)} && user_hi == {int(hi)})"
    if ref is not None:
        return f"group_id == {int(ref.group_id or 0)}"
    parts = [f"user_lo == {int(user_id)}", f"user_hi == {int(user_id)}"]
    groups = sorted(int(g) for g in group_ids)
    if groups:
        parts.append(f"in_values(group_id, {', '.join(map(str, groups))})")
    return "(" + " || ".join(parts) + ")"


def history_floors(*, user_id: int) -> dict[int, int]:
    """The user's live groups, each with the seq the user joined at."""
    return dict(GroupMember.objects.filter(user_id=user_id, group__dissolved=False)
                .values_list("group_id", "joined_seq"))


# A caller who can read more messages than this is searched term-first (see
# messages_search). At 1,000,000 messages, for a reader of 110,000 of them, the scoped
# script cost 35-50 ms before any match; the match alone 5 ms for a rare word, 23 ms
# for 7,700 matches, 55 ms for 131,000 (docs/benchmarks.md, "Search").
TERM_FIRST_ABOVE = 20_000
TERM_FIRST_ROWS = 500


def messages_search(*, user_id: int, query: str, ref: ConversationRef | None = None,
                    before_message_id: int | None = None, limit: int = 20) -> tuple[list[Message], bool]:
    """Messages the user can read now whose current body matches `query`, newest first
    (by message id, which grows with time), older than `before_message_id`; and whether
    there are more. `ref` limits the search to one conversation the caller has been
    checked to read.

    Groonga returns the newest matches in the user's conversations a page at a time;
    hidden (delete-for-me) and recalled ones are dropped here, fetching further pages
    until the page is full or the matches end.

    Groonga's cost is the size of the sets it intersects: the caller's messages (the
    scope) and the matches. For a caller who can read many messages, the newest
    TERM_FIRST_ROWS matches are first fetched without the scope and filtered here:
    when the caller's share of them fills the page, the scope set is never built."""
    floors = history_floors(user_id=user_id)
    found: list[Message] = []
    if _readable_estimate(user_id=user_id, floors=floors, ref=ref) > TERM_FIRST_ABOVE:
        found, before_message_id, done = _term_first(user_id=user_id, query=query, ref=ref, floors=floors,
                                                     before_message_id=before_message_id, limit=limit)
        if done:
            return found[:limit], len(found) > limit
    script = f"*SS ({match_expression(query)}) && {scope_expression(user_id=user_id, group_ids=floors, ref=ref)}"
    batch = limit + 1 + 8  # a few spare rows: hidden or recalled ones seldom force a second round
    while True:
        ids = [row[0] for row in _newest(script, before_message_id=before_message_id, rows=batch)]
        found.extend(_readable(user_id=user_id, message_ids=ids, floors=floors))
        if len(found) > limit or len(ids) < batch:
            return found[:limit], len(found) > limit
        before_message_id = ids[-1]
        batch = min(batch * 4, 1000)


def _newest(script: str, *, before_message_id: int | None, rows: int) -> list[tuple[int, int, int, int]]:
    """(message_id, user_lo, user_hi, group_id) of the newest rows the script matches."""
    cursor_sql = f" && message_id < {int(before_message_id)}" if before_message_id is not None else ""
    with connection.cursor() as cursor:
        # Only MATCH in the WHERE, ORDER BY a column, LIMIT: Mroonga sorts and cuts in Groonga.
        cursor.execute(f"SELECT message_id, user_lo, user_hi, group_id FROM {SEARCH_TABLE} "
                       "WHERE MATCH(body) AGAINST(%s IN BOOLEAN MODE) ORDER BY message_id DESC LIMIT %s",
                       [script + cursor_sql, rows])
        return [(int(a), int(b), int(c), int(d)) for a, b, c, d in cursor.fetchall()]


def _term_first(*, user_id: int, query: str, ref: ConversationRef | None, floors: dict[int, int],
                before_message_id: int | None, limit: int) -> tuple[list[Message], int | None, bool]:
    """The newest TERM_FIRST_ROWS matches of anyone, kept when in the caller's scope.
    Returns what was found, where the scoped search must go on from, and whether the
    page is complete (full, or no more matches)."""
    rows = _newest(f"*SS {match_expression(query)}", before_message_id=before_message_id, rows=TERM_FIRST_ROWS)
    if ref is not None and ref.kind == "single":
        mine = [mid for mid, lo, hi, _ in rows if (lo, hi) == ref.user_ids]
    elif ref is not None:
        mine = [mid for mid, _, _, gid in rows if gid == ref.group_id]
    else:
        mine = [mid for mid, lo, hi, gid in rows if user_id in (lo, hi) or gid in floors]
    found = _readable(user_id=user_id, message_ids=mine, floors=floors)
    done = len(found) > limit or len(rows) < TERM_FIRST_ROWS
    return found, (rows[-1][0] if rows else before_message_id), done


def _readable_estimate(*, user_id: int, floors: dict[int, int], ref: ConversationRef | None) -> int:
    """About how many messages the caller can read (in `ref`, when given): the sum of
    their conversations' max_seq. One indexed query."""
    if ref is not None:
        cids = [ref.conversation_id]
        singles = ""
    else:
        cids = [f"g_{gid}" for gid in floors]
        singles = (f"c.conversation_id IN (SELECT s.conversation_id FROM {ConversationState._meta.db_table} s "
                   "WHERE s.user_id = %s AND s.conversation_id LIKE 's\\_%%')")
    where = " OR ".join(filter(None, [singles, f"c.conversation_id IN ({', '.join(['%s'] * len(cids))})"
                                      if cids else ""]))
    params: list[Any] = ([user_id] if singles else []) + cids
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(SUM(c.max_seq), 0) FROM {Conversation._meta.db_table} c WHERE {where}",
                       params)
        return int(cursor.fetchone()[0])


def _readable(*, user_id: int, message_ids: list[int], floors: dict[int, int]) -> list[Message]:
    """The stored messages of `message_ids`, in that order, without the recalled ones,
    those the user deleted for themself, and those of a group from before the user
    joined it (`floors`: group id -> join seq)."""
    if not message_ids:
        return []
    hidden = set(HiddenMessage.objects.filter(user_id=user_id, message_id__in=message_ids)
                 .values_list("message_id", flat=True))
    stored = Message.objects.in_bulk([m for m in message_ids if m not in hidden])
    return [m for mid in message_ids if (m := stored.get(mid)) is not None and not m.recalled
            and m.seq > _floor(m.conversation_id, floors)]


def _floor(conversation_id: str, floors: dict[int, int]) -> int:
    ref = parse_conversation_id(conversation_id)
    if ref is not None and ref.group_id is not None:
        return floors.get(ref.group_id, 2 ** 63)  # not a member (any more): nothing
    return 0
