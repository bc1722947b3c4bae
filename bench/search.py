"""Message search over a bulk-seeded database: `python -m bench.search [--messages 1000000]`.

Seeds a database of its own (default gochat_bench_search, dropped and made anew; keep
it between runs with --reuse) with --messages messages of varied text in multi-row
INSERTs: English sentences drawn from a Zipf-distributed vocabulary, Chinese and
Japanese sentences built from common phrases and filler characters, some file
messages. One reader, the user searched as, has many conversations: --singles 1:1s and
--groups groups (a fifth of them joined late, so part of their history is not theirs),
a thousand messages hidden for them (delete-for-me); 1 % of all messages are recalled.
Everything else belongs to other people's conversations, as on a real server: the
full-text match sees all of it, and authorization must cut it down.

The index is then built with `manage.py rebuild_search_index --truncate`'s code (timed),
and each query runs --repeat times through the whole REST view (`GET /api/search`,
in process: authentication, validation, the SQL, the message objects; no socket),
giving p50/p95 per query. The seed is deterministic (--seed).
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

ENGLISH_STEMS = ["meet", "time", "work", "plan", "home", "call", "lunch", "train", "ticket", "photo", "report",
                 "budget", "review", "deploy", "server", "music", "movie", "coffee", "weekend", "holiday",
                 "birthday", "family", "doctor", "school", "market", "garden", "river", "city", "office", "party"]
SYLLABLES = ["ka", "lo", "mi", "ra", "ne", "to", "su", "vi", "de", "po", "an", "el", "or", "un", "is", "qu"]
CHINESE_PHRASES = ["我们明天见面吧", "今天天气很好", "你吃饭了吗", "周末一起去看电影", "会议改到下午三点",
                   "请把报告发给我", "路上注意安全", "生日快乐", "这个价格太贵了", "我在地铁上",
                   "晚上一起吃火锅", "项目进度怎么样", "明天早上九点出发", "谢谢你的帮助", "我马上到",
                   "下周去北京出差", "孩子放学了吗", "记得带伞", "新年快乐万事如意", "服务器又出问题了"]
JAPANESE_PHRASES = ["明日会いましょう", "お疲れ様です", "今日はいい天気ですね", "会議は三時からです",
                    "よろしくお願いします", "駅に着きました", "ありがとうございます", "週末は映画を見に行こう",
                    "資料を送ってください", "東京は雨です"]
FILLER = ("的一是不了人在有我他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小"
          "么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知"
          "民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间"
          "新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼"
          "体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或"
          "司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认"
          "算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领深近切")
# The queries: words at several frequencies, CJK substrings inside and across words.
QUERIES = [("word, common (rank 3)", "{w2}"), ("word, mid (rank 60)", "{w60}"), ("word, rare (rank 2000)", "{w2000}"),
           ("two words", "{w60} {w100}"), ("CJK 明天见", "明天见"), ("CJK 会議", "会議"),
           ("CJK 火锅", "火锅"), ("Japanese ありがとう", "ありがとう"), ("no match", "zzqxj"),
           ("CJK 明天见 in one group", "明天见@group"), ("word in one 1:1", "{w60}@single")]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words = list(ENGLISH_STEMS)
    seen = set(words)
    while len(words) < size:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


class Text:
    """Deterministic varied message bodies."""

    def __init__(self, rng: random.Random, vocab: list[str]) -> None:
        self.rng = rng
        self.vocab = vocab
        weights = [1 / (rank + 1) for rank in range(len(vocab))]  # Zipf, s = 1
        self.cum = list(_accumulate(weights))

    def english(self) -> str:
        words = self.rng.choices(self.vocab, cum_weights=self.cum, k=self.rng.randint(3, 14))
        return " ".join(words).capitalize()

    def chinese(self) -> str:
        parts = [self.rng.choice(CHINESE_PHRASES) for _ in range(self.rng.randint(1, 2))]
        parts.append("".join(self.rng.choice(FILLER) for _ in range(self.rng.randint(2, 12))))
        self.rng.shuffle(parts)
        return "\uff0c".join(parts) + "\u3002"  # full-width comma and full stop

    def japanese(self) -> str:
        filler = "".join(self.rng.choice(FILLER) for _ in range(self.rng.randint(0, 6)))
        return self.rng.choice(JAPANESE_PHRASES) + filler

    def body(self) -> tuple[str, str, str]:
        """(kind, body, extra JSON)."""
        r = self.rng.random()
        if r < 0.50:
            return "text", self.english(), "{}"
        if r < 0.82:
            return "text", self.chinese(), "{}"
        if r < 0.97:
            return "text", self.japanese(), "{}"
        name = f"{self.rng.choice(self.vocab)}-{self.rng.randint(1, 999)}.pdf"
        return "file", "", json.dumps({"name": name})


def _accumulate(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def setup(database: str) -> None:
    os.environ.update({
        "GOCHAT_DATABASE_URL": f"mysql://root@127.0.0.1:3306/{database}",
        "GOCHAT_THROTTLE_USER": "100000000/min",
        "GOCHAT_LOG_LEVEL": "WARNING",  # no access-log line per call
        "DJANGO_DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "gochat_project.settings",
    })
    os.environ.setdefault("GOCHAT_REDIS_URL", "redis://127.0.0.1:6379/11")  # throttle counters only
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(args: argparse.Namespace) -> dict[str, Any]:
    """The database, made anew and filled. Returns who to search as and what was seeded."""
    import MySQLdb
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import User
    from gochat_project.ops import services
    from groups.models import Group, GroupMember

    conn = MySQLdb.connect(host="127.0.0.1", user="root")
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{args.database}`")
    conn.close()
    services.ensure_database()
    call_command("migrate", verbosity=0)
    rng = random.Random(args.seed)
    text = Text(rng, vocabulary(rng, args.vocabulary))
    started = time.monotonic()
    User.objects.bulk_create([User(username=f"sb{i}", password="!") for i in range(args.people)])
    people = list(User.objects.order_by("id"))
    reader, others = people[0], people[1:]
    Group.objects.bulk_create([Group(name=f"g{i}", owner_id=others[i % len(others)].pk, member_count=50)
                               for i in range(args.groups)])
    mine = list(Group.objects.order_by("id"))
    late = {g.pk: args.group_messages // 2 for g in mine[: max(1, args.groups // 5)]}  # joined halfway
    GroupMember.objects.bulk_create([GroupMember(group_id=g.pk, user_id=reader.pk, joined_seq=late.get(g.pk, 0))
                                     for g in mine])
    # Conversations: the reader's, then other people's until the total is reached.
    convs: list[tuple[str, int, list[int]]] = []  # (conversation id, messages, possible senders)
    for peer in others[: args.singles]:
        convs.append((f"s_{reader.pk}_{peer.pk}", args.single_messages, [reader.pk, peer.pk]))
    for g in mine:
        convs.append((f"g_{g.pk}", args.group_messages, [reader.pk, *(o.pk for o in rng.sample(others, 5))]))
    readable = sum(c[1] for c in convs)
    rest = args.messages - readable
    i = 0
    while rest > 0:
        count = min(rest, rng.randint(100, 2000))
        # Never the reader's: group ids past the reader's groups, 1:1s between others
        # (the second id made unique per conversation; no user row is needed for it).
        if i % 3 == 0:
            cid, senders = f"g_{1_000_000 + i}", [o.pk for o in rng.sample(others, 5)]
        else:
            a = rng.choice(others)
            cid, senders = f"s_{a.pk}_{1_000_000 + i}", [a.pk, 1_000_000 + i]
        convs.append((cid, count, senders))
        rest -= count
        i += 1
    # Messages in time order across conversations (ids are snowflake-like: time-ordered).
    cursor_seq = {cid: 0 for cid, _, _ in convs}
    slots = [idx for idx, (_, count, _) in enumerate(convs) for _ in range(count)]
    rng.shuffle(slots)
    base_id = 7_300_000_000_000_000_000
    base_ts = 1_790_000_000_000
    hidden_ids: list[tuple[int, str]] = []
    rows: list[tuple[Any, ...]] = []
    inserted = 0
    with connection.cursor() as cursor:
        for n, idx in enumerate(slots):
            cid, _, senders = convs[idx]
            cursor_seq[cid] += 1
            kind, body, extra = text.body()
            recalled = rng.random() < 0.01
            mid = base_id + n * 4096
            if idx < args.singles + args.groups and not recalled and rng.random() < 0.01:
                hidden_ids.append((mid, cid))
            rows.append((mid, cid, cursor_seq[cid], rng.choice(senders), kind, "" if recalled else body,
                         "{}" if recalled else extra, f"c{n}", base_ts + n * 3, int(recalled)))
            if len(rows) == args.batch:
                _insert(cursor, rows)
                inserted += len(rows)
                rows = []
                if inserted % 100_000 == 0:
                    progress(f"seeded {inserted:,} messages")
        _insert(cursor, rows)
        cursor.executemany("INSERT INTO conversations (conversation_id, max_seq, last_message_id, last_ts) "
                           "VALUES (%s, %s, NULL, 0)", list(cursor_seq.items()))
        # Read states of the reader's 1:1s, as persistence creates them with each 1:1's first message.
        cursor.executemany("INSERT INTO conversation_states (user_id, conversation_id, read_seq) VALUES (%s, %s, 0)",
                           [(reader.pk, cid) for cid, _, _ in convs[: args.singles]])
        cursor.executemany("INSERT INTO hidden_messages (user_id, message_id, conversation_id) VALUES (%s, %s, %s)",
                           [(reader.pk, mid, cid) for mid, cid in hidden_ids[:1000]])
    seed_s = time.monotonic() - started
    progress(f"seeded {args.messages:,} messages in {seed_s:.0f} s; {readable:,} in the reader's "
             f"{args.singles} 1:1s and {args.groups} groups")
    return {"reader_id": reader.pk, "seed_s": round(seed_s, 1), "readable": readable, "text": text}


def _insert(cursor: Any, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        cursor.executemany("INSERT INTO messages (message_id, conversation_id, seq, sender_id, kind, body, extra, "
                           "client_msg_id, ts, recalled) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(args: argparse.Namespace, reader_id: int, vocab: list[str]) -> list[dict[str, Any]]:
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import AccessToken

    from groups.models import GroupMember

    client = APIClient()
    token = AccessToken()
    token["user_id"] = reader_id
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    late_group = GroupMember.objects.filter(user_id=reader_id, joined_seq__gt=0).values_list("group_id", flat=True)[0]
    out = []
    for label, template in QUERIES:
        q = template.format(w2=vocab[2], w60=vocab[60], w100=vocab[100], w2000=vocab[2000])
        params = {"q": q, "limit": 20}
        if q.endswith("@group"):
            params.update(q=q[: -len("@group")], conversation_id=f"g_{late_group}")
        elif q.endswith("@single"):
            params.update(q=q[: -len("@single")], conversation_id=f"s_{reader_id}_{reader_id + 1}")
        times, results = [], 0
        for i in range(args.repeat + 2):
            started = time.perf_counter()
            r = client.get("/api/search", params)
            elapsed = (time.perf_counter() - started) * 1000
            assert r.status_code == 200, (r.status_code, r.content[:300])
            if i >= 2:  # two warm-up calls
                times.append(elapsed)
            results = len(r.json()["results"])
        matched = _matches(params["q"])
        out.append({"query": label, "q": params["q"], "results": results, "index_matches": matched,
                    "p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 95), 1),
                    "max_ms": round(max(times), 1)})
        progress(f"{label:32} q={params['q']!r}: p50 {out[-1]['p50_ms']} ms, p95 {out[-1]['p95_ms']} ms "
                 f"({results} results; {matched:,} rows match in the whole index)")
    return out


def _matches(q: str) -> int:
    from django.db import connection

    from messaging import search

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {search.SEARCH_TABLE} WHERE MATCH(body) AGAINST(%s IN BOOLEAN MODE)",
                       ["*SS " + search.match_expression(q)])
        return int(cursor.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="gochat_bench_search", help="dropped and made anew (unless --reuse)")
    parser.add_argument("--reuse", action="store_true", help="search the database an earlier run seeded")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--singles", type=int, default=200, help="the reader's 1:1 conversations")
    parser.add_argument("--single-messages", type=int, default=300)
    parser.add_argument("--groups", type=int, default=50, help="the reader's groups")
    parser.add_argument("--group-messages", type=int, default=1000)
    parser.add_argument("--vocabulary", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=5000, help="rows per INSERT")
    parser.add_argument("--repeat", type=int, default=50, help="calls per query")
    parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args()
    setup(args.database)
    from messaging import search

    rng = random.Random(args.seed)
    vocab = vocabulary(rng, args.vocabulary)
    if args.reuse:
        from accounts.models import User

        reader_id = User.objects.order_by("id").values_list("id", flat=True)[0]
        index_s = None
    else:
        seeded = seed(args)
        reader_id = seeded["reader_id"]
        started = time.monotonic()
        indexed = search.search_index_rebuild(truncate=True)
        index_s = round(time.monotonic() - started, 1)
        progress(f"rebuild_search_index --truncate: {indexed:,} messages indexed in {index_s} s")
    measure(args, reader_id, vocab)


if __name__ == "__main__":
    main()
