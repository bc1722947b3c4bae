"""The logic loop on sentry-arroyo (GOCHAT_LOGIC_LOOP=arroyo): an experiment against
loop.py (issue 22, item 5). Only the loop differs; pipeline.py runs each batch unchanged.

Arroyo's StreamProcessor polls one record at a time and hands it to a chain of
strategies; here:
  Buffer(_Batch)  gather records: up to batch_size, or until nothing more is fetched
  RunTask         the pipeline on the batch (retried in place until it succeeds)
  _Settle         hold the batch's offsets until the logic producer has drained
  CommitOffsets   store them; librdkafka commits stored offsets every 200 ms

Two things arroyo's stock parts could not do as loop.py does:
- Reduce/BatchStep close a batch on size or age, and the processor polls with a fixed
  1 s timeout: a lone send waited for the next record or for that second. _Batch also
  closes when the consumer has nothing more fetched (_Consumer sets `drained`), and
  _Consumer polls without waiting while a batch is open: loop.py's consume_available.
- A strategy cannot seek: a batch whose deliveries failed is run again from the records
  _Settle keeps, not consumed again (every step is idempotent, the result is the same).
"""

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, cast

from arroyo.backends.kafka import KafkaConsumer, KafkaPayload
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import CommitOffsets, ProcessingStrategy, ProcessingStrategyFactory, RunTask
from arroyo.processing.strategies.buffer import Buffer
from arroyo.types import BaseValue, BrokerValue, Commit, FilteredPayload, Message, Partition, Topic, Value
from confluent_kafka import Message as KafkaMessage
from django.db import close_old_connections

from gochat_project.infra import kafka, redis_client
from messaging.logic import logic_group_id
from messaging.logic.pipeline import Pipeline
from messaging.snowflake import Snowflake

log = logging.getLogger(__name__)

Records = list[BaseValue[KafkaPayload]]

# Upper bound on a batch's age while records keep coming (loop.py has none: it takes
# what is fetched, at most batch_size). 50 ms keeps a batch under the 2,000 msg/s bench's
# ~100 records, so the bound rarely applies; it only caps a trickle that never drains.
MAX_BATCH_SECONDS = 0.05
# An idle poll: the processor checks for shutdown and _Settle for acknowledgements this often.
IDLE_POLL_SECONDS = 0.1


class _BatchState:
    """Shared by _Batch (is a batch open?) and _Consumer (was the last poll empty?)."""

    def __init__(self) -> None:
        self.open = False
        self.drained = False


class _Consumer(KafkaConsumer):
    """Arroyo's consumer, polling without waiting while a batch is open (and noting when
    nothing more is fetched), and at most IDLE_POLL_SECONDS otherwise."""

    def __init__(self, configuration: Mapping[str, Any], state: _BatchState) -> None:
        super().__init__(configuration)
        self._state = state

    def poll(self, timeout: float | None = None) -> BrokerValue[KafkaPayload] | None:
        if not self._state.open:
            return super().poll(IDLE_POLL_SECONDS if timeout is None else min(timeout, IDLE_POLL_SECONDS))
        record = super().poll(0)
        self._state.drained = record is None
        return record


class _Batch:
    """Arroyo's BufferProtocol: the records of one batch, ready at batch_size, once the
    consumer has nothing more fetched, or at MAX_BATCH_SECONDS."""

    def __init__(self, state: _BatchState, max_size: int) -> None:
        self._state = state
        self._max_size = max_size
        self._records: Records = []
        self._until = 0.0

    @property
    def buffer(self) -> Records:
        return self._records

    @property
    def is_empty(self) -> bool:
        return not self._records

    @property
    def is_ready(self) -> bool:
        return (len(self._records) >= self._max_size or self._state.drained
                or time.monotonic() >= self._until)

    @property
    def readiness_reason(self) -> str:
        return "size" if len(self._records) >= self._max_size else "drained"

    def append(self, message: BaseValue[KafkaPayload]) -> None:
        if not self._records:
            self._until = time.monotonic() + MAX_BATCH_SECONDS
            self._state.open = True
        self._state.drained = False
        self._records.append(message)

    def new(self) -> "_Batch":
        self._state.open = False
        return _Batch(self._state, self._max_size)


class _Record:
    """The four calls pipeline.py makes on a confluent-kafka record, over arroyo's value."""

    def __init__(self, value: BaseValue[KafkaPayload]) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value.payload.value

    def topic(self) -> str:
        return next(iter(self._value.committable)).topic.name

    def partition(self) -> int:
        return next(iter(self._value.committable)).index

    def offset(self) -> int:
        return next(iter(self._value.committable.values())) - 1


class _Settle(ProcessingStrategy[FilteredPayload | Records]):
    """Passes a batch's offsets on once every delivery produced so far is acknowledged
    (checked on each poll, without waiting); on a failed delivery runs the unsettled
    batches again. Waits when batch_size records are unsettled."""

    def __init__(self, logic: "ArroyoLogic", next_step: ProcessingStrategy[Any]) -> None:
        self._logic = logic
        self._next = next_step
        self._pending: list[Message[FilteredPayload | Records]] = []

    def submit(self, message: Message[FilteredPayload | Records]) -> None:
        self._pending.append(message)  # a filtered one too: its offset must not pass the others'
        if len(self._records()) >= self._logic.batch_size:
            self._settle(wait=True)

    def poll(self) -> None:
        if self._pending:
            self._settle(wait=False)
        self._next.poll()

    def _settle(self, *, wait: bool) -> None:
        producer = self._logic.producer
        if not wait and producer.client.flush(0):
            return  # still in flight: settled on a later poll
        while True:
            try:
                producer.flush_or_raise()
                break
            except Exception:
                log.exception("deliveries of %d batches failed; running them again", len(self._pending))
                self._logic.process(self._records())
        for m in self._pending:
            self._next.submit(Message(Value(None, m.committable, m.timestamp)))
        self._pending.clear()

    def _records(self) -> Records:
        return [r for m in self._pending if not isinstance(m.payload, FilteredPayload) for r in m.payload]

    def close(self) -> None:
        pass

    def terminate(self) -> None:
        self._next.terminate()

    def join(self, timeout: float | None = None) -> None:
        if self._pending:
            self._settle(wait=True)
        self._next.close()
        self._next.join(timeout)


class _Factory(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self, logic: "ArroyoLogic") -> None:
        self._logic = logic

    def create_with_partitions(self, commit: Commit,
                               partitions: Mapping[Partition, int]) -> ProcessingStrategy[KafkaPayload]:
        logic = self._logic
        settle = _Settle(logic, CommitOffsets(commit))
        run: ProcessingStrategy[FilteredPayload | Records] = RunTask(logic.run_task, settle)
        return cast(ProcessingStrategy[KafkaPayload], Buffer(_Batch(logic.state, logic.batch_size), run))


class ArroyoLogic:
    """loop.Logic's interface (stop_event, run) on arroyo's StreamProcessor."""

    def __init__(self, *, batch_size: int = 1000) -> None:
        self.batch_size = batch_size
        self.stop_event = threading.Event()
        self.state = _BatchState()
        self.producer = kafka.producer_build("logic deliveries")
        worker = int(redis_client.client().incr(redis_client.key("snowflake_worker"))) % 1024
        self.pipeline = Pipeline(self.producer, Snowflake(worker), self.stop_event)

    def run_task(self, message: Message[Records]) -> Records:
        self.process(message.payload)
        return message.payload

    def process(self, records: Records) -> None:
        """The pipeline on records, retried with backoff until it succeeds or logic stops
        (loop.py rewinds and consumes again; here the batch is still in hand)."""
        backoff = 0.1
        while True:
            try:
                self.pipeline.process_records(cast(list[KafkaMessage], [_Record(r) for r in records]))
                return
            except Exception:
                if self.stop_event.is_set():
                    raise  # the batch is not settled: consumed again after the restart
                log.exception("batch of %d failed; retrying in %.1fs", len(records), backoff)
                close_old_connections()
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def run(self) -> None:
        consumer = _Consumer(kafka.consumer_config(logic_group_id(), **{
            "max.poll.interval.ms": 600000, "auto.commit.interval.ms": 200,
            "arroyo.enable.auto.commit": True}), self.state)
        processor = StreamProcessor(consumer, Topic(kafka.upstream_topic()), _Factory(self))

        def stop_on_event() -> None:  # run_logic's signal handler sets stop_event
            self.stop_event.wait()
            processor.signal_shutdown()

        threading.Thread(target=stop_on_event, name="logic-stop", daemon=True).start()
        log.info("logic consuming %s as %s (arroyo)", kafka.upstream_topic(), logic_group_id())
        try:
            processor.run()
        finally:
            with contextlib.suppress(Exception):
                self.producer.client.flush(10)
