"""The logic consumer: orders and routes messages (seed flow 2, "persistence first,
push decoupled").

For each batch read from `gochat.messages.upstream`:
1. check each sender may write to its conversation, and may attach the upload it names;
2. assign message ids and seqs in one Redis call (idempotent per client_msg_id), and
   record where each upload was sent (so its readers may download it from the push on);
3. publish ONE persistence task for the batch and, while Kafka stores it, work out
   the batch's frames and where they go; wait for Kafka's acknowledgement;
4. only then cache the messages in Redis and produce deliveries (acks, messages,
   errors, read receipts), one Kafka record per gateway; the next batch does not
   wait for their acknowledgement;
5. once they are acknowledged, store the upstream offsets, which librdkafka commits
   in the background (a batch consumed twice is harmless).
A failure anywhere rewinds to the first offsets of every batch not yet stored and
retries: every step is idempotent, so a batch consumed twice changes nothing but
duplicate pushes, which clients drop by message_id.
"""

import contextlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.db import close_old_connections

from fanout import presence
from fanout.downstream import Deliveries, flush_or_raise
from gochat_project import kafka, redis_client
from gochat_project.celery import Publication, publish, publish_started
from groups import selectors as group_selectors
from messaging import metrics, protocol, sequences
from messaging import selectors as message_selectors
from messaging.conversations import ConversationRef, parse_conversation_id
from messaging.logic import logic_group_id
from messaging.snowflake import Snowflake
from messaging.tasks import persist_messages
from uploads import selectors as upload_selectors
from uploads import services as upload_services

log = logging.getLogger(__name__)

@dataclass
class Send:
    sender_id: int
    gateway_id: str | None
    conn_id: str | None
    ref: ConversationRef
    fields: dict[str, Any]
    recipients: list[int] = field(default_factory=list)
    large_group: bool = False
    upload_id: uuid.UUID | None = None  # the attachment, once checked


def message_payload(send: Send, assigned: sequences.Assigned) -> dict[str, Any]:
    """The protocol's message object."""
    f = send.fields
    return {"message_id": str(assigned.message_id), "conversation_id": assigned.conversation_id,
            "seq": assigned.seq, "sender_id": send.sender_id, "kind": f["kind"], "body": f["body"],
            "extra": f["extra"], "client_msg_id": f["client_msg_id"], "ts": assigned.ts, "recalled": False}


def _assigned_from_rows(stored: dict[tuple[int, str], tuple[int, int, int, str]]
                        ) -> dict[tuple[int, str], sequences.Assigned]:
    return {key: sequences.Assigned(mid, seq, ts, cid, False) for key, (mid, seq, ts, cid) in stored.items()}


def _frame(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


class Logic:
    def __init__(self, *, batch_size: int = 1000, poll_timeout: float = 0.1) -> None:
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.stop_event = threading.Event()
        self._produce_errors: list[Exception] = []
        self.producer = Producer(kafka.producer_config(on_delivery=self._on_delivery))
        worker = int(redis_client.client().incr(redis_client.key("snowflake_worker"))) % 1024
        self.snowflake = Snowflake(worker)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._produce_errors.append(KafkaException(err))

    # --- the loop ---------------------------------------------------------------

    def run(self) -> None:
        # Offsets are stored once a batch's deliveries are acknowledged and committed by
        # librdkafka in the background (every 200 ms): no commit request per batch. A crash
        # loses at most the last interval's commits, and those batches are consumed again,
        # which every step tolerates.
        consumer = Consumer(kafka.consumer_config(logic_group_id(), **{
            "max.poll.interval.ms": 600000, "enable.auto.commit": True, "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 200}))
        consumer.subscribe([kafka.upstream_topic()])
        log.info("logic consuming %s as %s", kafka.upstream_topic(), logic_group_id())
        backoff = 0.1
        lag_reported = 0.0
        # Batches whose deliveries are produced but not yet acknowledged. The next batch
        # does not wait for them: their offsets are stored once the producer has drained.
        unsettled: list[KafkaMessage] = []
        try:
            while not self.stop_event.is_set():
                if time.monotonic() - lag_reported > 5:
                    self._report_lag(consumer)
                    lag_reported = time.monotonic()
                batch = kafka.consume_available(consumer, self.batch_size, self.poll_timeout)
                records = [m for m in batch if m.error() is None]
                for m in batch:
                    if m.error() is not None:
                        log.warning("upstream consume error: %s", m.error())
                try:
                    if unsettled:
                        self._settle(consumer, unsettled, wait=not records or len(unsettled) >= self.batch_size)
                    if records:
                        self.process_records(records)
                        unsettled.extend(records)
                        records = []
                    backoff = 0.1
                except Exception:
                    failed = unsettled + records
                    log.exception("batch of %d failed; rewinding to retry in %.1fs", len(failed), backoff)
                    close_old_connections()
                    self._rewind(consumer, failed)
                    unsettled.clear()
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
            if unsettled:
                self._settle(consumer, unsettled, wait=True)
        finally:
            consumer.close()
            self.producer.flush(10)

    def _settle(self, consumer: Consumer, unsettled: list[KafkaMessage], *, wait: bool) -> None:
        """Store the offsets of unsettled batches once every delivery is acknowledged
        (without waiting for that unless wait); raise if a delivery failed."""
        if not wait and self.producer.flush(0):
            return  # still in flight: settled after a later batch
        flush_or_raise(self.producer, self._produce_errors)
        consumer.store_offsets(offsets=self._next_offsets(unsettled))
        unsettled.clear()

    @staticmethod
    def _report_lag(consumer: Consumer) -> None:
        """Lag from the high watermarks the fetch responses carried: no request to the broker."""
        lag = 0
        assignment = consumer.assignment()
        for tp, pos in zip(assignment, consumer.position(assignment), strict=True):
            watermarks = consumer.get_watermark_offsets(tp, cached=True)
            if watermarks and watermarks[1] >= 0 and pos.offset >= 0:
                lag += max(0, watermarks[1] - pos.offset)
        metrics.CONSUMER_LAG.labels(kafka.upstream_topic()).set(lag)

    @staticmethod
    def _next_offsets(records: list[KafkaMessage]) -> list[TopicPartition]:
        """Per partition, the offset after the batch's last record: what to commit."""
        last: dict[tuple[str, int], int] = {}
        for m in records:
            k = (m.topic(), m.partition())
            last[k] = max(last.get(k, -1), m.offset())
        return [TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]

    @staticmethod
    def _rewind(consumer: Consumer, records: list[KafkaMessage]) -> None:
        first: dict[tuple[str, int], int] = {}
        for m in records:
            k = (m.topic(), m.partition())
            first[k] = min(first.get(k, m.offset()), m.offset())
        for (topic, partition), offset in first.items():
            # A partition revoked meanwhile: its new owner starts from the committed offset.
            with contextlib.suppress(KafkaException):
                consumer.seek(TopicPartition(topic, partition, offset))

    # --- one batch --------------------------------------------------------------

    def process_records(self, records: list[KafkaMessage]) -> None:
        started = time.perf_counter()
        events = []
        for m in records:
            try:
                events.append(orjson.loads(m.value()))
            except orjson.JSONDecodeError:
                log.error("undecodable upstream record at %s[%d]@%d skipped", m.topic(), m.partition(), m.offset())
        self.process_events(events)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def process_events(self, events: list[dict[str, Any]]) -> None:
        deliveries = Deliveries()
        sends = [e for e in events if e.get("t") == "send"]
        notices = [e for e in events if e.get("t") in ("read", "recall", "typing", "hide")]
        accepted, rejections, stored = self._authorize(sends)
        accepted, refused = self._check_uploads(accepted)
        for send, code, detail in rejections + refused:
            metrics.REJECTED.labels(code).inc()
            if send.gateway_id and send.conn_id:
                deliveries.to_connection(send.gateway_id, _frame(
                    {"type": "error", "code": code, "detail": detail,
                     "client_msg_id": send.fields.get("client_msg_id")}), send.conn_id)
        payloads: list[dict[str, Any]] = []
        persisting: Publication | None = None
        if accepted:
            assigned = self._assign(accepted, stored)
            payloads = [message_payload(s, a) for s, a in zip(accepted, assigned, strict=True)]
            self._attach_uploads(accepted, assigned)
            persisting = publish_started(persist_messages, [payloads], queue=kafka.persist_topic(),
                                         summary=f"[{len(payloads)} messages]")
        large = self._route(accepted, payloads, notices, deliveries)  # while the broker stores the task
        if persisting is not None:
            persisting.wait()  # step 3: durable before anything is cached or pushed
            self._cache_recent(payloads)
            metrics.ACCEPTED.inc(len(payloads))
        if large:
            from fanout.tasks import fanout_frames

            publish(fanout_frames, [large], queue=kafka.fanout_topic(), summary=f"[{len(large)} frames]")
        if deliveries:
            deliveries.produce(self.producer)  # acknowledged before the batch's offsets are stored (run)
            self.producer.poll(0)

    # --- steps ------------------------------------------------------------------

    def _authorize(self, events: list[dict[str, Any]]
                   ) -> tuple[list[Send], list[tuple[Send, str, str]], dict[tuple[int, str], sequences.Assigned]]:
        """Accepted sends, rejections, and the sends already stored in MySQL (read in the
        same query, for _assign)."""
        sends: list[Send] = []
        rejected: list[tuple[Send, str, str]] = []
        for e in events:
            ref = parse_conversation_id(e.get("cid"))
            fields = {k: e.get(k) for k in ("client_msg_id", "body", "kind", "extra")}
            send = Send(int(e["uid"]), e.get("gw"), e.get("conn"), ref or ConversationRef("", "single"), fields)
            if ref is None:
                rejected.append((send, protocol.INVALID, "malformed conversation_id"))
            else:
                sends.append(send)
        checks = message_selectors.send_checks(
            user_ids={s.sender_id for s in sends} | {u for s in sends for u in s.ref.user_ids},
            pairs={(s.ref.peer_of(s.sender_id), s.sender_id) for s in sends
                   if s.ref.kind == "single" and s.sender_id in s.ref.user_ids},
            resends={(s.sender_id, s.fields["client_msg_id"]) for s in sends})
        active, blocks = checks.active_user_ids, checks.blocks
        senders_by_group: dict[int, set[int]] = defaultdict(set)
        for s in sends:
            if s.ref.group_id is not None:
                senders_by_group[s.ref.group_id].add(s.sender_id)
        groups = group_selectors.groups_for_routing(senders=senders_by_group)
        accepted: list[Send] = []
        for s in sends:
            if s.sender_id not in active:
                rejected.append((s, protocol.FORBIDDEN, "your account is not active"))
            elif s.ref.kind == "single":
                if s.sender_id not in s.ref.user_ids:
                    rejected.append((s, protocol.NOT_MEMBER, "not a participant of this conversation"))
                elif not set(s.ref.user_ids) <= active:
                    rejected.append((s, protocol.FORBIDDEN, "the other user is not active"))
                elif (s.ref.peer_of(s.sender_id), s.sender_id) in blocks:
                    rejected.append((s, protocol.BLOCKED, "you cannot message this user"))
                else:
                    s.recipients = sorted(set(s.ref.user_ids))
                    accepted.append(s)
            else:
                group = groups.get(s.ref.group_id)  # type: ignore[arg-type]
                member = group.members.get(s.sender_id) if group else None
                if group is None or member is None:
                    rejected.append((s, protocol.NOT_MEMBER, "not a member of this group"))
                elif member.muted:
                    rejected.append((s, protocol.FORBIDDEN, "you are muted in this group"))
                else:
                    s.large_group = group.is_large
                    s.recipients = [] if group.is_large else list(group.members)
                    accepted.append(s)
        return accepted, rejected, _assigned_from_rows(checks.stored)

    @staticmethod
    def _check_uploads(sends: list[Send]) -> tuple[list[Send], list[tuple[Send, str, str]]]:
        """A send naming an upload_id must name an upload of its sender's, of a type its kind
        allows (one query per batch; none when no send names one). The upload's own facts
        then replace whatever the client wrote under those keys of `extra`."""
        named = {s.fields["extra"]["upload_id"] for s in sends if "upload_id" in (s.fields["extra"] or {})}
        if not named:
            return sends, []
        found = upload_selectors.uploads_by_id(upload_ids=named)
        accepted: list[Send] = []
        refused: list[tuple[Send, str, str]] = []
        for s in sends:
            upload_id = (s.fields["extra"] or {}).get("upload_id")
            if upload_id is None:
                accepted.append(s)
                continue
            upload = found.get(upload_id)
            problem = upload_selectors.upload_send_refusal(upload, sender_id=s.sender_id, kind=s.fields["kind"])
            if problem is not None or upload is None:
                refused.append((s, protocol.BAD_UPLOAD, problem or ""))
                continue
            s.fields["extra"] = {**s.fields["extra"], **upload_selectors.upload_public(upload)}
            s.upload_id = upload.id
            accepted.append(s)
        return accepted, refused

    @staticmethod
    def _attach_uploads(sends: list[Send], assigned: list[sequences.Assigned]) -> None:
        """Before the push: a recipient may download the file as soon as the message reaches them."""
        upload_services.uploads_attach(links=[(s.upload_id, a.conversation_id, a.message_id, a.seq)
                                              for s, a in zip(sends, assigned, strict=True)
                                              if s.upload_id is not None])

    def _assign(self, sends: list[Send], stored: dict[tuple[int, str], sequences.Assigned]
                ) -> list[sequences.Assigned]:
        """stored: the sends already in MySQL, as _authorize found them."""
        while True:
            todo = [s for s in sends if (s.sender_id, s.fields["client_msg_id"]) not in stored]
            args = []
            for s in todo:
                message_id, ts = self.snowflake.next_id()
                args.append((s.ref.conversation_id, s.sender_id, s.fields["client_msg_id"], message_id, ts))
            assigned = self._assign_in_redis(args) if args else []
            if assigned is not None:
                break
            # Re-seeded after persistence drained: a resend whose first copy was stored
            # meanwhile must get that copy's ack. A new seq for it would never be stored
            # (the first copy holds its client_msg_id) and leave a gap. Look again.
            stored = self._stored_duplicates(sends)
        fresh = iter(assigned)
        out = []
        for s in sends:
            key = (s.sender_id, s.fields["client_msg_id"])
            out.append(stored[key] if key in stored else next(fresh))
        return out

    def _assign_in_redis(self, args: list[tuple[str, int, str, int, int]]) -> list[sequences.Assigned] | None:
        """Seqs from Redis; None when Redis had lost its counters and they were re-seeded."""
        while True:
            try:
                return sequences.assign(args)
            except sequences.FenceRequired:
                log.warning("sequence counters are gone from Redis: waiting for persistence to drain")
                self._await_persistence_drained()
                sequences.seed_counters({a[0] for a in args})
                sequences.mark_counters_epoch()
                return None
            except sequences.SeedRequired as need:
                # The epoch marker is present, so Redis kept every counter it was given:
                # a missing one belongs to a conversation that never had a seq, and
                # nothing of it can be waiting for persistence. Seed from MySQL at once.
                sequences.seed_counters(need.conversation_ids)

    def _await_persistence_drained(self) -> None:
        """Fence: no seq may be (re)seeded while acked messages still wait for storage."""
        topic = kafka.persist_topic()
        reported = time.monotonic()
        while not self.stop_event.is_set():
            try:
                lag = kafka.consumer_group_lag(kafka.celery_consumer_group(topic), topic)
            except Exception as exc:  # broker restarting: keep holding the sends
                log.warning("persist backlog unknown (%s); holding sends", exc)
                lag = -1
            if lag == 0:
                return
            if time.monotonic() - reported > 5:
                log.warning("holding sends: %d persistence tasks still to store", lag)
                reported = time.monotonic()
            self.stop_event.wait(0.2)
        raise InterruptedError("stopping")

    @staticmethod
    def _stored_duplicates(sends: list[Send]) -> dict[tuple[int, str], sequences.Assigned]:
        """Sends already stored in MySQL (idempotency that survives Redis)."""
        checks = message_selectors.send_checks(user_ids=set(), pairs=set(),
                                               resends={(s.sender_id, s.fields["client_msg_id"]) for s in sends})
        return _assigned_from_rows(checks.stored)

    @staticmethod
    def _cache_recent(payloads: list[dict[str, Any]]) -> None:
        by_conv: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        for p in payloads:
            by_conv[p["conversation_id"]].append((p["seq"], orjson.dumps(p)))
        sequences.recent_add(by_conv, [(p["message_id"], p["conversation_id"], p["seq"], p["sender_id"])
                                       for p in payloads])

    def _route(self, sends: list[Send], payloads: list[dict[str, Any]], notices: list[dict[str, Any]],
               deliveries: Deliveries) -> list[tuple[int, str]]:
        """Acks to the sending connections, then every frame to its recipients' gateways
        (one presence lookup for the batch). Returns the frames for large groups, which
        go to one fan-out job."""
        pushes: list[tuple[str, list[int], str | None]] = []  # (frame, recipients, connection to skip)
        large: list[tuple[int, str]] = []  # (group id, frame) for the chunked fan-out
        for send, payload in zip(sends, payloads, strict=True):
            if send.gateway_id and send.conn_id:
                deliveries.to_connection(send.gateway_id, _frame(
                    {"type": "ack", "client_msg_id": payload["client_msg_id"], "message_id": payload["message_id"],
                     "conversation_id": payload["conversation_id"], "seq": payload["seq"], "ts": payload["ts"]}),
                    send.conn_id)
            frame = _frame({"type": "message", "message": payload})
            if send.large_group:
                large.append((send.ref.group_id, frame))  # type: ignore[arg-type]
            else:
                pushes.append((frame, send.recipients, send.conn_id))
        self._route_notices(notices, pushes, large)
        gateways = presence.gateways_of_users(u for _, users, _ in pushes for u in users)
        for frame, users, skip in pushes:
            self._to_users(deliveries, gateways, frame, users, skip)
        return large

    @staticmethod
    def _route_notices(notices: list[dict[str, Any]], pushes: list[tuple[str, list[int], str | None]],
                       large: list[tuple[int, str]]) -> None:
        """Read receipts (the reader's devices, and the peer in 1:1) and recalls (everyone)."""
        refs = [(n, parse_conversation_id(n.get("cid"))) for n in notices]
        routed_groups = {ref.group_id: set[int]() for n, ref in refs
                         if ref is not None and ref.group_id is not None and n["t"] in ("recall", "typing")}
        groups = group_selectors.groups_for_routing(senders=routed_groups)  # type: ignore[arg-type]
        for n, ref in refs:
            if ref is None:
                continue
            if n["t"] == "read":
                reader = int(n["uid"])
                users = [reader] if ref.kind == "group" else sorted({reader, ref.peer_of(reader)})
                frame = _frame({"type": "read", "conversation_id": ref.conversation_id, "user_id": reader,
                                "seq": int(n["seq"])})
                pushes.append((frame, users, n.get("conn")))
            elif n["t"] == "typing":
                # Ephemeral: 1:1 peer, or a small group's other members; never a large group.
                typer = int(n["uid"])
                frame = _frame({"type": "typing", "conversation_id": ref.conversation_id, "user_id": typer})
                if ref.kind == "single":
                    pushes.append((frame, [u for u in set(ref.user_ids) if u != typer], None))
                elif (group := groups.get(ref.group_id)) is not None and not group.is_large:  # type: ignore[arg-type]
                    pushes.append((frame, [u for u in group.members if u != typer], None))
            elif n["t"] == "hide":
                frame = _frame({"type": "hidden", "conversation_id": ref.conversation_id,
                                "message_id": str(n["mid"])})
                pushes.append((frame, [int(n["uid"])], n.get("conn")))
            elif n["t"] == "recall":
                frame = _frame({"type": "recall", "conversation_id": ref.conversation_id,
                                "message_id": str(n["mid"]), "seq": int(n["seq"])})
                if ref.kind == "single":
                    pushes.append((frame, sorted(set(ref.user_ids)), None))
                elif (group := groups.get(ref.group_id)) is not None:  # type: ignore[arg-type]
                    if group.is_large:
                        large.append((group.group_id, frame))
                    else:
                        pushes.append((frame, list(group.members), None))

    @staticmethod
    def _to_users(deliveries: Deliveries, gateways: dict[int, set[str]], frame: str, users: list[int],
                  exclude_conn: str | None) -> None:
        by_gateway: dict[str, list[int]] = defaultdict(list)
        for u in users:
            for gw in gateways.get(u, ()):
                by_gateway[gw].append(u)
        for gw, uids in by_gateway.items():
            deliveries.to_users(gw, frame, uids, exclude_conn)
