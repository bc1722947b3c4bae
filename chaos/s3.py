"""A local S3 server for the broker's durable storage engine: `python -m chaos.s3 PORT [BUCKET]`.

Tansu's `s3://` engine keeps its log (one object per record batch), watermarks,
producer state, group state and committed offsets as objects, and changes them with
conditional writes: `If-None-Match: *` to create, `If-Match: <etag>` to update (the
Rust `object_store` crate's S3 client, `S3ConditionalPut::ETagMatch`). The harness
kills the broker with -9 and restarts it on the same bucket; this process keeps the
bucket in memory meanwhile.

Why not moto (FIELD-NOTES.md): its server checks the conditions but not atomically
(concurrent writers lost and duplicated records until every request was serialised),
and once serialised it was far too slow for a broker under load: a ListObjectsV2 of
200 keys took 130-200 ms (its generic response serialiser), and Tansu lists a
partition's whole prefix on every fetch that has new data, so with two producers
and a consumer the consumer fell further behind every second (615 of 1,200 records
after 72 s). This server implements only what that client sends (PUT with those
preconditions, GET/HEAD with If-None-Match/If-Match, DELETE, ListObjectsV2 with
prefix, delimiter, start-after and continuation tokens) and runs every request
under one lock, so each check-and-write is atomic. ETags are unique per write.
"""

import bisect
import os
import sys
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

TRACE = bool(os.environ.get("CHAOS_S3_TRACE"))
PAGE = 1000  # S3's default and maximum max-keys


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


@dataclass
class Obj:
    body: bytes
    etag: str  # quoted, as S3 sends it
    modified: float
    content_type: str
    listed: str = ""  # its <Contents> entry in a listing, made once: the broker lists whole partitions

    def __post_init__(self) -> None:
        self.listed = (f"<LastModified>{_iso(self.modified)}</LastModified><ETag>{escape(self.etag)}</ETag>"
                       f"<Size>{len(self.body)}</Size></Contents>")


class Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.keys: list[str] = []  # sorted, for listing by prefix

    def put(self, key: str, obj: Obj) -> None:
        if key not in self.objects:
            bisect.insort(self.keys, key)
        self.objects[key] = obj

    def delete(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            self.keys.pop(bisect.bisect_left(self.keys, key))

    def list(self, prefix: str, delimiter: str, after: str, max_keys: int) -> tuple[list[str], list[str], str]:
        """(keys, common prefixes, the last name returned if the page is truncated, else '')."""
        keys: list[str] = []
        prefixes: list[str] = []
        last = ""
        if after < prefix:
            i = bisect.bisect_left(self.keys, prefix)
        elif delimiter and after.endswith(delimiter):
            i = bisect.bisect_left(self.keys, _successor(after))  # past everything under that common prefix
        else:
            i = bisect.bisect_right(self.keys, after)
        while i < len(self.keys) and self.keys[i].startswith(prefix):
            if len(keys) + len(prefixes) == max_keys:
                return keys, prefixes, last
            key = self.keys[i]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                last = key[:cut + len(delimiter)]
                prefixes.append(last)
                i = bisect.bisect_left(self.keys, _successor(last))
            else:
                last = key
                keys.append(key)
                i += 1
        return keys, prefixes, ""


def _successor(prefix: str) -> str:
    """The smallest string after every string that starts with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, Bucket] = {}
        self.generation = count(1)
        self.stats: dict[str, list[float]] = {}  # "PUT 412", "GET list 200" ... -> [requests, seconds]

    def count(self, what: str, started: float) -> None:
        stat = self.stats.setdefault(what, [0, 0.0])
        stat[0] += 1
        stat[1] += time.perf_counter() - started

    def report(self, every: float) -> None:
        """A line on stdout every `every` seconds: requests and time spent answering them, by kind."""
        while True:
            time.sleep(every)
            with self.lock:
                stats, self.stats = self.stats, {}
            busy = sum(t for _, t in stats.values())
            print(f"s3: last {every:.0f} s: {sum(n for n, _ in stats.values()):.0f} requests, busy "
                  f"{100 * busy / every:.0f} %: " + ", ".join(f"{k} {n:.0f} ({1000 * t / max(n, 1):.1f} ms)"
                                                          for k, (n, t) in sorted(stats.items())), flush=True)


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in wanted or etag in wanted


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections
    # Headers and body go out in one write, without Nagle: otherwise each response waits
    # for the client's delayed ACK (~40 ms), and the broker makes its requests one by one.
    disable_nagle_algorithm = True
    store: Store

    def log_message(self, format: str, *args: object) -> None:
        if TRACE:  # CHAOS_S3_TRACE=1: one line per request on stderr
            sys.stderr.write(f"{time.monotonic():.3f} {format % args}\n")

    # --- plumbing --------------------------------------------------------------------

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        self.started = time.perf_counter()
        url = urlsplit(self.path)
        bucket, _, key = unquote(url.path).lstrip("/").partition("/")
        return bucket, key, parse_qs(url.query, keep_blank_values=True)

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               send_body: bool = True) -> None:
        listing = "list-type" in self.path
        self.store.count(f"{self.command}{' list' if listing else ''} {status}", self.started)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n")  # what end_headers() adds; then one write with the body
        self.wfile.write(b"".join(self._headers_buffer) + (body if send_body else b""))
        self._headers_buffer = []

    def _error(self, status: int, code: str, send_body: bool = True) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code></Error>'.encode()
        self._reply(status, body, {"Content-Type": "application/xml"}, send_body)

    def _bucket(self, name: str) -> Bucket | None:
        bucket = self.store.buckets.get(name)
        if bucket is None:
            self._error(404, "NoSuchBucket")
        return bucket

    # --- verbs -----------------------------------------------------------------------

    def do_PUT(self) -> None:
        name, key, _ = self._target()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.store.lock:
            if not key:
                self.store.buckets.setdefault(name, Bucket())
                self._reply(200)
                return
            bucket = self._bucket(name)
            if bucket is None:
                return
            current = bucket.objects.get(key)
            if_none_match, if_match = self.headers.get("If-None-Match"), self.headers.get("If-Match")
            if if_none_match is not None and current is not None and _etag_matches(if_none_match, current.etag):
                self._error(412, "PreconditionFailed")
                return
            if if_match is not None:
                if current is None:
                    self._error(404, "NoSuchKey")
                    return
                if not _etag_matches(if_match, current.etag):
                    self._error(412, "PreconditionFailed")
                    return
            etag = f'"{next(self.store.generation):032x}"'
            bucket.put(key, Obj(body, etag, time.time(),
                                self.headers.get("Content-Type") or "application/octet-stream"))
            self._reply(200, headers={"ETag": etag})

    def do_GET(self, send_body: bool = True) -> None:
        name, key, query = self._target()
        with self.store.lock:
            bucket = self._bucket(name)
            if bucket is None:
                return
            if not key:
                self._list(bucket, query)
                return
            obj = bucket.objects.get(key)
            if obj is None:
                self._error(404, "NoSuchKey", send_body)
                return
            headers = {"ETag": obj.etag, "Last-Modified": formatdate(obj.modified, usegmt=True),
                       "Content-Type": obj.content_type}
            if_match, if_none_match = self.headers.get("If-Match"), self.headers.get("If-None-Match")
            if if_match is not None and not _etag_matches(if_match, obj.etag):
                self._error(412, "PreconditionFailed", send_body)
            elif if_none_match is not None and _etag_matches(if_none_match, obj.etag):
                self._reply(304, headers={**headers, "Content-Length": "0"})
            elif self.headers.get("Range"):
                self._error(501, "NotImplemented", send_body)  # the broker never asks for a range
            else:
                self._reply(200, obj.body, {**headers, "Content-Length": str(len(obj.body))}, send_body)

    def do_HEAD(self) -> None:
        self.do_GET(send_body=False)

    def do_DELETE(self) -> None:
        name, key, _ = self._target()
        with self.store.lock:
            bucket = self._bucket(name)
            if bucket is not None:
                bucket.delete(key)
                self._reply(204)

    def do_POST(self) -> None:  # multipart uploads, batch deletes: never sent by the broker
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._error(501, "NotImplemented")

    def _list(self, bucket: Bucket, query: dict[str, list[str]]) -> None:
        arg = {k: v[0] for k, v in query.items()}
        if arg.get("list-type") != "2":
            self._error(501, "NotImplemented")
            return
        prefix, delimiter = arg.get("prefix", ""), arg.get("delimiter", "")
        after = max(arg.get("continuation-token", ""), arg.get("start-after", ""))
        max_keys = min(int(arg.get("max-keys", PAGE)), PAGE)
        keys, prefixes, last = bucket.list(prefix, delimiter, after, max_keys)
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                 f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(keys) + len(prefixes)}</KeyCount>",
                 f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if last else 'false'}</IsTruncated>"]
        if last:
            parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        parts += [f"<Contents><Key>{escape(key)}</Key>{bucket.objects[key].listed}" for key in keys]
        parts += [f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        parts.append("</ListBucketResult>")
        self._reply(200, "".join(parts).encode(), {"Content-Type": "application/xml"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(port: int, bucket: str, host: str = "127.0.0.1") -> Server:
    """A server (not yet serving) with one empty bucket; port 0 picks a free port."""
    store = Store()
    store.buckets[bucket] = Bucket()
    return Server((host, port), type("BoundHandler", (Handler,), {"store": store}))


def serve(port: int, bucket: str, host: str = "127.0.0.1") -> None:
    with make_server(port, bucket, host) as server:
        threading.Thread(target=server.RequestHandlerClass.store.report, args=(10.0,), daemon=True).start()
        print(f"s3: serving bucket {bucket} on {host}:{port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "tansu")
