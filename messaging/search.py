"""Message search: a Mroonga full-text index beside `messages`, fed by persistence.

Why Mroonga (MariaDB's Groonga storage engine, Debian's `mariadb-plugin-mroonga`):
InnoDB's FULLTEXT splits on spaces and punctuation, so it finds no substring of
Chinese or Japanese text; Mroonga's TokenBigram indexes CJK text as overlapping
character pairs (`明天见` is found in `我们明天见面吧` by phrase search over `明天`,
`天见`) and alphabetic runs as whole words, NormalizerAuto folds case. Being a table
in the same MariaDB, a search is one SQL statement that applies the caller's
authorization (conversations, group join floors, recalls, delete-for-me) beside the
MATCH, with no second system to feed, back up or keep consistent
(docs/architecture.md, "Search", has the alternatives and the figures).

The index holds one row per searchable message: its current searchable text
(`search_text`), and the conversation and seq that authorization filters on.
- Persistence adds a batch's rows with one multi-row INSERT IGNORE
  (`search_index_add`), so a redelivered batch never puts back an edited body.
- A recall removes the row (`search_index_remove`); the search also joins
  `messages` and skips recalled rows, so a row that outlives its recall is harmless.
- An edit calls `search_index_replace` with the new body.
- `manage.py rebuild_search_index` rebuilds it from `messages`.

Mroonga tables are not transactional: a row written inside a transaction that rolls
back stays. That is safe here because every result is joined with its stored,
unrecalled `messages` row, and persistence retries its whole batch idempotently.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

from groups.models import GroupMember
from messaging.conversations import ConversationRef
from messaging.models import HiddenMessage, Message, MessageKind

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
    " body TEXT NOT NULL,"
    # TokenBigram: CJK as character pairs, runs of letters or digits as one token;
    # NormalizerAuto: case folding (and full-width/half-width forms) at index and query time.
    " FULLTEXT INDEX message_search_body (body) COMMENT 'tokenizer \"TokenBigram\", normalizer \"NormalizerAuto\"'"
    ") ENGINE=Mroonga DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
)


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


def _index_rows(messages: Iterable[dict[str, Any]]) -> list[tuple[int, str, int, str]]:
    rows = []
    for m in messages:
        text = search_text(kind=m["kind"], body=m["body"], extra=m.get("extra"))
        if text is not None:
            rows.append((int(m["message_id"]), m["conversation_id"], int(m["seq"]), text))
    return rows


def search_index_add(*, messages: Sequence[dict[str, Any]]) -> None:
    """Index a batch of just-stored messages (persistence's format) in one multi-row
    INSERT IGNORE: a message already indexed keeps its row (a redelivered batch does not
    put back a body that an edit has replaced since)."""
    rows = _index_rows(messages)
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT IGNORE INTO {SEARCH_TABLE} (message_id, conversation_id, seq, body) "
                               "VALUES (%s, %s, %s, %s)", rows)


def search_index_replace(*, message_id: int, conversation_id: str, seq: int, kind: str, body: str,
                         extra: dict[str, Any] | None = None) -> None:
    """Index a message's current body, replacing what was indexed: what an edit calls
    once the new body is stored. Safe before the message's own persistence: that batch's
    INSERT IGNORE then keeps this row."""
    text = search_text(kind=kind, body=body, extra=extra)
    if text is None:
        search_index_remove(message_ids=[message_id])
        return
    with connection.cursor() as cursor:
        cursor.execute(f"REPLACE INTO {SEARCH_TABLE} (message_id, conversation_id, seq, body) "
                       "VALUES (%s, %s, %s, %s)", [message_id, conversation_id, seq, text])


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
                cursor.executemany(f"INSERT INTO {SEARCH_TABLE} (message_id, conversation_id, seq, body) "
                                   "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE body = VALUES(body)", rows)
        indexed += len(rows)
        after = chunk[-1]["message_id"]


def search_expression(query: str) -> str:
    """Groonga's boolean-mode query for the user's text: every whitespace-separated term
    must match (`*D+`), each quoted as a phrase so that no character of it is an operator.
    A CJK term matches as a substring; a term in letters matches words that begin with it
    (Groonga prefix-matches a query's last token)."""
    terms = ['"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in query.split()]
    return "*D+ " + " ".join(terms)


def _scope(*, user_id: int, ref: ConversationRef | None, floors: dict[str, int]) -> tuple[str, list[Any]]:
    """The SQL condition on `s` for "a conversation the user can read, from their join".

    1:1 conversations are recognised by their id (`s_{a}_{b}` with the user as a or b);
    groups are those in `floors` (conversation id -> the seq the user joined at)."""
    if ref is not None:
        return "s.conversation_id = %s AND s.seq > %s", [ref.conversation_id, floors.get(ref.conversation_id, 0)]
    parts = [r"s.conversation_id LIKE %s", r"s.conversation_id LIKE %s"]
    params: list[Any] = [f"s\\_{user_id}\\_%", f"s\\_%\\_{user_id}"]
    from_start = [cid for cid, floor in floors.items() if floor <= 0]
    if from_start:
        parts.append(f"s.conversation_id IN ({', '.join(['%s'] * len(from_start))})")
        params.extend(from_start)
    for cid, floor in floors.items():
        if floor > 0:
            parts.append("(s.conversation_id = %s AND s.seq > %s)")
            params.extend([cid, floor])
    return "(" + " OR ".join(parts) + ")", params


def history_floors(*, user_id: int, ref: ConversationRef | None) -> dict[str, int]:
    """The groups whose history the user reads (`ref`'s alone when given), each with the
    seq the user joined at: their history starts after it."""
    members = GroupMember.objects.filter(user_id=user_id, group__dissolved=False)
    if ref is not None:
        members = members.filter(group_id=ref.group_id) if ref.group_id is not None else members.none()
    return {f"g_{gid}": joined for gid, joined in members.values_list("group_id", "joined_seq")}


def messages_search(*, user_id: int, query: str, ref: ConversationRef | None = None,
                    before_message_id: int | None = None, limit: int = 20) -> tuple[list[Message], bool]:
    """Messages the user can read now whose current body matches `query`, newest first
    (by message id, which grows with time), older than `before_message_id`; and whether
    there are more. `ref` limits the search to one conversation the caller has been
    checked to read.

    One statement: the MATCH runs in Groonga and yields candidate rows; the scope, the
    recall and delete-for-me filters apply to those only (docs/benchmarks.md, "Search")."""
    floors = history_floors(user_id=user_id, ref=ref)
    scope, params = _scope(user_id=user_id, ref=ref, floors=floors)
    cursor_sql = ""
    if before_message_id is not None:
        cursor_sql = "AND s.message_id < %s "
        params.append(before_message_id)
    # STRAIGHT_JOIN: start from the full-text match, never from a scan of messages.
    sql = (f"SELECT STRAIGHT_JOIN m.* FROM {SEARCH_TABLE} s "
           f"JOIN {Message._meta.db_table} m ON m.message_id = s.message_id "
           "WHERE MATCH(s.body) AGAINST(%s IN BOOLEAN MODE) "
           f"AND {scope} {cursor_sql}AND NOT m.recalled "
           f"AND NOT EXISTS (SELECT 1 FROM {HiddenMessage._meta.db_table} h "
           "WHERE h.user_id = %s AND h.message_id = s.message_id) "
           "ORDER BY s.message_id DESC LIMIT %s")
    rows = list(Message.objects.raw(sql, [search_expression(query), *params, user_id, limit + 1]))
    return rows[:limit], len(rows) > limit
