"""The gateway side of downstream: one consumer thread per gateway process reads
its own topic and hands each record to the event loop, which writes the frames
to the local sockets. No Redis round trip per message.

Starts at the end of the topic: pushes are best effort, clients `sync`."""

import asyncio
import logging
import threading
import uuid
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from gochat_project.infra import kafka
from messaging.protocol import decode_deliveries

if TYPE_CHECKING:
    from messaging.gateway.runtime import LocalConnections, Socket

log = logging.getLogger(__name__)


class DownstreamListener(threading.Thread):
    def __init__(self, gateway_id: str, connections: "LocalConnections", loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name=f"downstream-{gateway_id}", daemon=True)
        self.gateway_id = gateway_id
        self.connections = connections
        self.loop = loop
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._pushing: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        topic = kafka.downstream_topic(self.gateway_id)
        # A group of its own, never committed: this process only wants what is new.
        consumer = Consumer(kafka.consumer_config(
            f"gateway-{self.gateway_id}-{uuid.uuid4().hex[:8]}",
            **{"auto.offset.reset": "latest", "enable.partition.eof": False},
        ))
        partitions = self._partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p, self._end_offset(consumer, topic, p)) for p in partitions])
        self.ready.set()
        try:
            while not self._stop.is_set():
                messages = kafka.consume_available(consumer, 500, 0.1)
                records = []
                for m in messages:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("downstream consume error: %s", m.error())
                        continue
                    records.append(m.value())
                if records:
                    self.loop.call_soon_threadsafe(self.dispatch, records)
        finally:
            consumer.close()

    def dispatch(self, records: list[bytes]) -> None:
        """Runs on the event loop: push each delivery to its target sockets, in order."""
        task = asyncio.get_running_loop().create_task(self._push_all(records))
        self._pushing.add(task)
        task.add_done_callback(self._pushing.discard)

    async def _push_all(self, records: list[bytes]) -> None:
        for value in records:
            try:
                deliveries = decode_deliveries(value)
            except (ValueError, KeyError, TypeError, AttributeError):
                log.error("undecodable downstream record dropped")
                continue
            for d in deliveries:
                targets: list[Socket] = []
                if d.watched is not None:  # a presence change: the sockets subscribed to that user
                    targets = self.connections.presence_targets(d.watched, d.at_ms)
                for user_id in d.user_ids:
                    targets.extend(s for cid, s in self.connections.by_user.get(user_id, {}).items()
                                   if cid != d.skip_conn)
                for conn_id in d.conn_ids:
                    if (s := self.connections.by_conn.get(conn_id)) is not None:
                        targets.append(s)
                if d.close_code is not None:  # control: close them (a ban, the connection cap)
                    for socket in targets:
                        await socket.close(code=d.close_code)
                    continue
                assert d.frame is not None
                for socket in targets:
                    await socket.push(d.frame)

    @staticmethod
    def _end_offset(consumer: Consumer, topic: str, partition: int) -> int:
        """The end of a partition, resolved now rather than lazily at the first fetch
        (a lazy OFFSET_END would skip what is produced before it resolves).
        """
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
            return high if high >= 0 else OFFSET_END
        except Exception as exc:
            log.warning("end offset of %s[%d] unknown (%s); starting at the logical end", topic, partition, exc)
            return OFFSET_END

    def _partitions(self, consumer: Consumer, topic: str) -> list[int]:
        while not self._stop.is_set():
            try:
                meta = consumer.list_topics(topic, timeout=5)
                found = meta.topics.get(topic)
                if found is not None and found.error is None and found.partitions:
                    return sorted(found.partitions)
            except Exception as exc:  # broker not up yet: retry, the gateway keeps serving
                log.warning("downstream topic %s not available yet: %s", topic, exc)
            self._stop.wait(1.0)
        return []
