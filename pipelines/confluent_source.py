"""``KafkaSource`` on confluent-kafka (librdkafka): the default client.

librdkafka decodes, decompresses and checks record batches in C, on its own threads; reading a
range here costs one Python call per 10,000 records plus building the Arrow columns. Range ends
come from the high watermark that fetch responses carry (librdkafka caches it per partition),
never from ListOffsets "latest".

Connecting costs ~50 ms (bootstrap, metadata); a request on an open connection ~0.3 ms. So the
source keeps one consumer per group open between calls (a batch asks for partitions, watermarks,
committed offsets and commits several times) until ``close()`` or a failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from pipelines.confluent_admin import ConfluentAdmin
from pipelines.confluent_records import (
    by_partition,
    count_bytes,
    keep_in_range,
    past_end,
    raw_batch,
)
from pipelines.fetch_waits import FETCH_WAITS_MS, SHORTER_AGAIN_AFTER, FetchWaits
from pipelines.kafka_source import (
    KafkaUnavailable,
    OffsetRange,
    ReadBudget,
    TopicNotFound,
    check_together,
    refuse_deleted_ranges,
)
from pipelines.past_ends import PAST_ENDS

log = logging.getLogger("rda.kafka")

READ_BATCH = 10_000  # records per consume() call
_BASE_CONFIG = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
    # A range starting below a partition's log start (records deleted by retention before
    # they were read) fails its read: librdkafka's default jumps to the log's end instead.
    "auto.offset.reset": "error",
    "allow.auto.create.topics": False,
    "client.id": "rda-pipeline",
    # Tansu answers a fetch with up to fetch.max.bytes whatever the range asked for: 1 MiB
    # reads a 250-record range in ~22 ms (16 MiB: ~40 ms) and a 45,000-record one as fast.
    "fetch.max.bytes": 1 << 20,
    "max.partition.fetch.bytes": 1 << 20,
    "log_level": 0,  # librdkafka's own stderr lines: errors reach us as exceptions instead
}
READER_GROUP = "rda-pipeline-reader"  # librdkafka wants a group id; readers never commit


class ConfluentSource:
    """``KafkaSource`` on confluent-kafka."""

    def __init__(
        self,
        bootstrap: str,
        timeout_s: float = 30.0,
        fetch_waits_ms: tuple[int, ...] = FETCH_WAITS_MS,
        shorter_again_after: int = SHORTER_AGAIN_AFTER,
        max_range_bytes: int | None = None,
    ) -> None:
        """``fetch_waits_ms``: the reader's fetch waits, shortest first; a longer one is taken
        when a read gets nothing, the shorter one tried again after ``shorter_again_after``
        whole reads (``pipelines/fetch_waits.py``). ``max_range_bytes``: the bytes of records
        one range may hold (``ReadBudget``)."""
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.max_range_bytes = max_range_bytes
        self._clients: dict[str, Any] = {}  # group -> an open consumer, reused by every call
        self._admin = ConfluentAdmin(bootstrap, timeout_s)  # topic ids, log starts
        self._waits = FetchWaits(fetch_waits_ms, shorter_again_after)  # the reader's

    # -- connections --------------------------------------------------------------------------

    def _consumer(self, group: str = READER_GROUP) -> Any:
        from confluent_kafka import Consumer, KafkaException

        timeout_ms = int(self.timeout_s * 1000)
        try:
            return Consumer(
                {
                    **_BASE_CONFIG,
                    "bootstrap.servers": self.bootstrap,
                    "group.id": group,
                    "socket.timeout.ms": max(timeout_ms, 1000),
                    "session.timeout.ms": 6000,  # Tansu: joins take about half of it
                    "heartbeat.interval.ms": 1000,
                    **(
                        {"fetch.wait.max.ms": self._waits.current_ms}
                        if group == READER_GROUP
                        else {}
                    ),
                }
            )
        except KafkaException as error:
            raise KafkaUnavailable(f"no Kafka broker answers at {self.bootstrap}") from error

    def _client(self, group: str = READER_GROUP) -> Any:
        """The open consumer of ``group``, connected on first use."""
        client = self._clients.get(group)
        if client is None:
            client = self._clients[group] = self._consumer(group)
        return client

    def close(self) -> None:
        """Close every consumer kept open between calls, each within the source's timeout:
        librdkafka's close can block for good (seen after a failed read, in a landing child:
        confluent-kafka-python#1667), and a stuck close must not stop the work that called it.
        A consumer that does not close in time is left to its thread."""
        clients, self._clients = self._clients, {}
        self._admin.close()
        for client in clients.values():
            self._close_in_time(client)

    def _close_in_time(self, client: Any) -> None:
        """Close ``client`` within the source's timeout, or leave it to its thread."""
        closing = threading.Thread(target=client.close, name="rda-kafka-close", daemon=True)
        closing.start()
        closing.join(self.timeout_s)
        if closing.is_alive():
            log.warning("a Kafka consumer did not close within %.1f s: left", self.timeout_s)

    @contextmanager
    def _answered(self, what: str) -> Iterator[None]:
        """librdkafka's errors (transport, timeouts) become the one error the driver retries;
        after any failure the next call starts on fresh connections."""
        from confluent_kafka import KafkaException

        try:
            yield
        except KafkaException as error:
            self.close()
            raise KafkaUnavailable(f"{what}: no answer from {self.bootstrap} ({error})") from error
        except BaseException:
            self.close()
            raise

    # -- the KafkaSource interface ------------------------------------------------------------

    def partitions(self, topic: str) -> list[int]:
        return self._partitions(self._client(), topic)

    def _partitions(self, consumer: Any, topic: str) -> list[int]:
        from confluent_kafka import KafkaError

        try:
            metadata = consumer.list_topics(topic, timeout=self.timeout_s)
        except Exception as error:  # KafkaException: no broker within the timeout
            self.close()
            raise KafkaUnavailable(f"no Kafka broker answers at {self.bootstrap}") from error
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            code = found.error.code() if found is not None and found.error else None
            if code not in (None, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                raise KafkaUnavailable(f"partitions of {topic}: {found.error}")
            raise TopicNotFound(f"topic {topic!r} does not exist on {self.bootstrap}")
        if not found.partitions:
            raise TopicNotFound(f"topic {topic!r} does not exist on {self.bootstrap}")
        return sorted(found.partitions)

    def high_watermarks(self, topic: str) -> dict[int, int]:
        """Each partition's high watermark, as the fetch responses report it.

        The consumer is assigned at the listed "latest" offset (which may fall short, see the
        module docstring) and polled until librdkafka has a fetched high watermark for every
        partition; ``get_watermark_offsets(cached=True)`` returns exactly that. The consumer is
        reused, so a cached watermark counts only once it has reached the listed one (an older
        fetch's would end the batch short of what is there).
        """
        from confluent_kafka import TopicPartition

        consumer = self._client()
        partitions = self._partitions(consumer, topic)
        with self._answered(f"end offsets of {topic}"):
            timeout = self.timeout_s
            listed = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in partitions
            }
            consumer.assign([TopicPartition(topic, p, max(end, 0)) for p, end in listed.items()])
            try:
                return self._fetched_highs(consumer, topic, listed)
            finally:
                # Stop fetching: a kept consumer left assigned prefetches in the background,
                # and its fetches delay every later request on the connection (~11 ms each).
                consumer.unassign()

    def _fetched_highs(self, consumer: Any, topic: str, listed: dict[int, int]) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        deadline = time.monotonic() + self.timeout_s
        highs: dict[int, int] = {}
        while True:
            consumer.consume(num_messages=1, timeout=0.1)  # fetches; what it returns is unused
            for p, floor in listed.items():
                if p not in highs:
                    _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
                    if high >= max(floor, 0):
                        highs[p] = high
            if len(highs) == len(listed):
                return highs
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"no high watermark for {topic} within the timeout")

    def topic_id(self, topic: str) -> str | None:
        """The topic's id (a UUID string), None where the broker has none: a topic deleted
        and recreated has another id, whatever its offsets."""
        return self._admin.topic_id(topic)

    def log_starts(self, topic: str) -> dict[int, int]:
        """Each partition's log start offset (records before it were deleted: retention)."""
        return self._admin.log_starts(topic)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        consumer = self._client(group)
        partitions = self._partitions(consumer, topic)
        with self._answered(f"committed offsets of {group}"):
            found = consumer.committed(
                [TopicPartition(topic, p) for p in partitions], timeout=self.timeout_s
            )
        return {tp.partition: max(tp.offset, 0) for tp in found}  # none yet: -1001

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        from confluent_kafka import TopicPartition

        consumer = self._client(group)
        with self._answered(f"committing offsets of {group}"):
            results = consumer.commit(
                offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                asynchronous=False,
            )
        failed = [tp for tp in results or () if tp.error is not None]
        if failed:
            self.close()
            raise KafkaUnavailable(f"committing offsets of {group}: {failed[0].error}")

    def read(self, offsets: OffsetRange) -> pa.RecordBatch:
        """All records of ``offsets``, in offset order, as one raw Arrow batch."""
        return self.read_many([offsets])[0]

    def read_many(self, ranges: list[OffsetRange]) -> list[pa.RecordBatch]:
        """``read`` of each range, with one assignment for them all (``check_together``).

        Every fetch then asks for all their partitions at once: Tansu holds a fetch that
        reaches a partition's end for the whole fetch wait, so ranges read one by one to their
        partitions' ends, as a stream's batch reads them, wait once each (four: ~60 against
        ~20 ms together)."""
        check_together(ranges)
        wanted = [r for r in ranges if r.size]
        kept: dict[int, list[Any]] = {}
        if wanted:
            try:
                kept = self._read_messages(wanted)
                firsts = {p: found[0].offset() if found else None for p, found in kept.items()}
                refuse_deleted_ranges(wanted, firsts, self.log_starts)
                if (reader := self._clients.get(READER_GROUP)) is not None:
                    reader.unassign()  # no prefetching past the ranges while it is kept
            except BaseException:
                self.close()  # after a failure, start the next read on a fresh connection
                PAST_ENDS.forget(self.bootstrap)
                raise
            if self._waits.read_done():
                self._wait_shorter()
        return [raw_batch(r, kept.get(r.partition, [])) for r in ranges]  # empty: not read

    def _read_messages(self, ranges: list[OffsetRange]) -> dict[int, list[Any]]:
        """Each range's messages (by partition), in offset order; the columns are built from
        them at once. Records an earlier read consumed from a range's start on are taken from
        ``PAST_ENDS``; those this read consumes past its ranges' ends are left there."""
        kept: dict[int, list[Any]] = {}
        positions: dict[int, int] = {}
        budget = ReadBudget(self.max_range_bytes)
        for r in ranges:
            kept[r.partition], positions[r.partition] = PAST_ENDS.take(self.bootstrap, r)
            count_bytes(budget, r, kept[r.partition], 0)
        past: dict[int, list[Any]] = {r.partition: [] for r in ranges}
        if unread := [r for r in ranges if positions[r.partition] < r.end]:
            # Only the ranges read from the broker: what it delivers of a partition follows the
            # last record consumed, which a range taken whole from ``PAST_ENDS`` did not consume.
            consumer = self._assigned(unread, positions)
            self._consume_into(consumer, unread, positions, kept, past, budget)
        for r in ranges:
            if past[r.partition]:  # else what a range taken whole left past its end stays
                PAST_ENDS.keep(self.bootstrap, r, past[r.partition])
        budget.refuse_over(ranges)
        return kept

    def _consume_into(
        self,
        consumer: Any,
        ranges: list[OffsetRange],
        positions: dict[int, int],
        kept: dict[int, list[Any]],
        past: dict[int, list[Any]],
        budget: ReadBudget,
    ) -> None:
        """Consume until every range is read to its end (``positions``): its messages appended
        to ``kept`` (counted against ``budget``), those consumed after its end to ``past``."""
        deadline = time.monotonic() + self.timeout_s
        while unread := [r for r in ranges if positions[r.partition] < r.end]:
            # consume() waits until it has num_messages or the timeout: asking for no more than
            # the ranges still hold returns as soon as they are there (not after 0.5 s).
            wanted = min(READ_BATCH, sum(r.end - positions[r.partition] for r in unread))
            with self._answered(f"reading {_names(unread)}"):
                messages = consumer.consume(num_messages=wanted, timeout=0.5)
            if messages:
                deadline = time.monotonic() + self.timeout_s
            elif self._at_ends(consumer, unread, positions):
                pass  # the rest of a range holds no records (control records, compaction)
            elif time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"no progress reading {_names(unread)} at {_offsets(unread, positions)}"
                )
            elif self._waits.can_wait_longer():
                consumer = self._wait_longer(unread, positions)
            found = by_partition(messages, f"reading {_names(unread)}")
            for r in ranges:
                if r.partition not in found:
                    continue
                if positions[r.partition] < r.end:
                    before = len(kept[r.partition])
                    positions[r.partition] = keep_in_range(
                        found[r.partition], positions[r.partition], r, kept[r.partition]
                    )
                    count_bytes(budget, r, kept[r.partition], before)
                    past[r.partition] += past_end(found[r.partition], r)
                else:  # read to its end in an earlier round: what follows
                    past[r.partition] += found[r.partition]
            self._let_go_of_read(consumer, unread, positions)

    def _let_go_of_read(
        self, consumer: Any, ranges: list[OffsetRange], positions: dict[int, int]
    ) -> None:
        """Stop fetching the partitions of ranges read to their ends while others are not:
        what librdkafka prefetched past their ends would come back at every consume(), at once,
        and keep the read spinning until the others' records arrive."""
        from confluent_kafka import TopicPartition

        done = [r for r in ranges if positions[r.partition] >= r.end]
        if done and len(done) < len(ranges):
            with self._answered(f"reading {_names(ranges)}"):
                consumer.incremental_unassign([TopicPartition(r.topic, r.partition) for r in done])

    def _assigned(self, ranges: list[OffsetRange], positions: dict[int, int]) -> Any:
        """The reader, assigned the ranges' partitions, each from its position."""
        from confluent_kafka import TopicPartition

        consumer = self._client()
        with self._answered(f"reading {_names(ranges)}"):
            # assign() replaces any earlier assignment and drops what was prefetched for it.
            consumer.assign(
                [TopicPartition(r.topic, r.partition, positions[r.partition]) for r in ranges]
            )
        return consumer

    def _wait_longer(self, ranges: list[OffsetRange], positions: dict[int, int]) -> Any:
        """A new reader that lets the broker hold its fetches for the next, longer wait
        (``pipelines/fetch_waits.py``), assigned at the ranges' positions."""
        self._drop_reader()
        waited, longer = self._waits.current_ms, self._waits.longer()
        log.warning(
            "no records from %s within %d ms fetches at %s: asking with %d ms for now",
            self.bootstrap, waited, _offsets(ranges, positions), longer,
            extra={"event": "kafka_fetch_wait", "fetch_wait_ms": longer},
        )  # fmt: skip
        return self._assigned(ranges, positions)

    def _wait_shorter(self) -> None:
        """The next read asks with the shorter wait again, on a new reader."""
        self._drop_reader()
        log.info(
            "asking %s with %d ms fetches again after a stretch of reads with a longer wait",
            self.bootstrap, self._waits.current_ms,
            extra={"event": "kafka_fetch_wait", "fetch_wait_ms": self._waits.current_ms},
        )  # fmt: skip

    def _drop_reader(self) -> None:
        """Close the reader (in time, not waited on): the next one is made with the wait in use."""
        stale = self._clients.pop(READER_GROUP, None)
        if stale is not None:
            self._close_in_time(stale)

    def _at_ends(self, consumer: Any, ranges: list[OffsetRange], positions: dict[int, int]) -> bool:
        """Whether the consumer has passed the end of any of ``ranges`` (records it skipped,
        as control records): those are read to their ends (``positions``)."""
        from confluent_kafka import TopicPartition

        with self._answered(f"reading {_names(ranges)}"):
            found = consumer.position([TopicPartition(r.topic, r.partition) for r in ranges])
        ends = {r.partition: r.end for r in ranges}
        passed = [tp.partition for tp in found if tp.offset >= ends[tp.partition]]
        for partition in passed:
            positions[partition] = ends[partition]
        return bool(passed)


def _names(ranges: list[OffsetRange]) -> str:
    return ", ".join(r.name for r in ranges)


def _offsets(ranges: list[OffsetRange], positions: dict[int, int]) -> str:
    return ", ".join(f"offset {positions[r.partition]} of {r.name}" for r in ranges)
