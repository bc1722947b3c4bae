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

import logging
import threading
import time
from collections import defaultdict
from typing import Any

import orjson
from confluent_kafka import Message as KafkaMessage

from fanout.downstream import Deliveries
from gochat_project.celery import Publication, publish, publish_started
from gochat_project.infra import kafka
from messaging import metrics, rules, sequences
from messaging.logic import routing
from messaging.logic.assign import SeqAssigner, assigned_from_rows
from messaging.protocol import Notice, SendEvent, decode_upstream
from messaging.snowflake import Snowflake
from messaging.tasks import persist_messages
from uploads import services as upload_services

log = logging.getLogger(__name__)


def message_payload(send: rules.Send, assigned: sequences.Assigned) -> dict[str, Any]:
    """The protocol's message object."""
    e = send.event
    return {"message_id": str(assigned.message_id), "conversation_id": assigned.conversation_id,
            "seq": assigned.seq, "sender_id": e.sender_id, "kind": e.kind, "body": e.body,
            "extra": e.extra, "client_msg_id": e.client_msg_id, "ts": assigned.ts, "recalled": False,
            "edited_at": None, "reply_to": send.reply_to, "mentions": e.mentions}


class Pipeline:
    """One batch of upstream records through the steps above; the loop (loop.py) owns the
    consumer and the offsets, and hands this its producer's deliveries to settle."""

    def __init__(self, producer: kafka.ProducerHandle, snowflake: Snowflake, stop_event: threading.Event) -> None:
        self.producer = producer
        self.assigner = SeqAssigner(snowflake, stop_event)

    def process_records(self, records: list[KafkaMessage]) -> None:
        started = time.perf_counter()
        sends: list[SendEvent] = []
        notices: list[Notice] = []
        for m in records:
            try:
                event = decode_upstream(m.value() or b"")  # no value: undecodable, like b""
            except (ValueError, KeyError, TypeError, AttributeError):
                log.error("undecodable upstream record at %s[%d]@%d skipped", m.topic(), m.partition(), m.offset())
                continue
            if isinstance(event, SendEvent):
                sends.append(event)
            elif event is not None:
                notices.append(event)
        self.process_events(sends, notices)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def process_events(self, events: list[SendEvent], notices: list[Notice]) -> None:
        deliveries = Deliveries()
        accepted, refused, stored = rules.sends_authorize(events)
        accepted, bad_uploads = rules.uploads_check(accepted)
        refused += bad_uploads
        for _, error in refused:
            metrics.REJECTED.labels(error.code).inc()
        routing.route_refusals(refused, deliveries)
        payloads: list[dict[str, Any]] = []
        persisting: Publication | None = None
        if accepted:
            assigned = self.assigner.assign(accepted, assigned_from_rows(stored))
            payloads = [message_payload(s, a) for s, a in zip(accepted, assigned, strict=True)]
            self._attach_uploads(accepted, assigned)
            persisting = publish_started(persist_messages, [payloads], queue=kafka.persist_topic(),
                                         summary=f"[{len(payloads)} messages]")
        large = routing.route(accepted, payloads, notices, deliveries)  # while the broker stores the task
        if persisting is not None:
            persisting.wait()  # step 3: durable before anything is cached or pushed
            self._cache_recent(payloads)
            metrics.ACCEPTED.inc(len(payloads))
        if large:
            from fanout.tasks import fanout_frames

            publish(fanout_frames, [large], queue=kafka.fanout_topic(), summary=f"[{len(large)} frames]")
        if deliveries:
            deliveries.produce(self.producer.client)  # acknowledged before the batch's offsets are stored (loop)
            self.producer.client.poll(0)

    @staticmethod
    def _attach_uploads(sends: list[rules.Send], assigned: list[sequences.Assigned]) -> None:
        """Before the push: a recipient may download the file as soon as the message reaches them."""
        upload_services.uploads_attach(links=[(s.upload_id, a.conversation_id, a.message_id, a.seq)
                                              for s, a in zip(sends, assigned, strict=True)
                                              if s.upload_id is not None])

    @staticmethod
    def _cache_recent(payloads: list[dict[str, Any]]) -> None:
        by_conv: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        for p in payloads:
            by_conv[p["conversation_id"]].append((p["seq"], orjson.dumps(p)))
        sequences.recent_add(by_conv, [(p["message_id"], p["conversation_id"], p["seq"], p["sender_id"])
                                       for p in payloads])
