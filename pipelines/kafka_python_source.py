"""``KafkaSource`` on kafka-python: the pure-Python fallback (``--kafka-client kafka-python``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from pipelines.kafka_source import (
    FORMAT_HEADER,
    KafkaUnavailable,
    OffsetRange,
    ReadBudget,
    RecordsLost,
    TopicNotFound,
    canonical_topic_id,
    check_together,
    first_headers,
    header_bytes,
    refuse_deleted_ranges,
)
from schemas.records import RAW_RECORD_SCHEMA, SIGNATURE_HEADER


class KafkaPythonSource:
    """``KafkaSource`` on kafka-python (with ``crc32c`` for fast CRC checks)."""

    def __init__(
        self, bootstrap: str, timeout_s: float = 30.0, max_range_bytes: int | None = None
    ) -> None:
        """``max_range_bytes``: the bytes of records one range may hold (``ReadBudget``)."""
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.max_range_bytes = max_range_bytes
        self._reader = None  # one consumer reused by read(): connecting costs ~0.1 s a chunk

    def close(self) -> None:
        """Close the consumer ``read`` keeps open between calls."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _consumer(self, group: str | None = None):
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError
        from kafka.net.compat import KafkaNetClient

        made: list[KafkaNetClient] = []

        def network_client(**configs) -> KafkaNetClient:
            made.append(KafkaNetClient(**configs))
            return made[-1]

        try:
            return KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=group,
                enable_auto_commit=False,
                client_id="rda-pipeline",
                # A read from below a partition's log start (records deleted before they were
                # read) raises instead of jumping to the log's end (the default, "latest").
                auto_offset_reset="none",
                max_partition_fetch_bytes=4 << 20,
                fetch_max_bytes=16 << 20,
                request_timeout_ms=int(self.timeout_s * 1000) + 1000,
                bootstrap_timeout_ms=int(self.timeout_s * 1000),
                kafka_client=network_client,
            )
        except KafkaError as error:
            # A consumer whose bootstrap fails raises from its constructor with its client's
            # network thread and sockets left open (kafka-python 3): close them here.
            for client in made:
                client.close()
            raise KafkaUnavailable(f"no Kafka broker answers at {self.bootstrap}") from error

    @property
    def _timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)

    @contextmanager
    def _answered(self, what: str) -> Iterator[None]:
        """A broker that does not answer within the timeout is ``KafkaUnavailable``.

        kafka-python's blocking calls wait forever by default (a paused broker would hang the
        driver instead of letting it retry), so every call gets ``timeout_ms`` and its timeout
        becomes the one error the driver retries.
        """
        from kafka.errors import KafkaError

        try:
            yield
        except KafkaError as error:
            raise KafkaUnavailable(
                f"{what}: no answer from {self.bootstrap} ({type(error).__name__})"
            ) from error

    def partitions(self, topic: str) -> list[int]:
        consumer = self._consumer()
        try:
            with self._answered(f"partitions of {topic}"):
                found = consumer.partitions_for_topic(topic)
        finally:
            consumer.close()
        if not found:
            raise TopicNotFound(f"topic {topic!r} does not exist on {self.bootstrap}")
        return sorted(found)

    def topic_id(self, topic: str) -> str | None:
        """The topic's id (a UUID string), None where the broker has none: a topic deleted
        and recreated has another id, whatever its offsets."""
        consumer = self._consumer()
        try:
            with self._answered(f"the id of {topic}"):
                if not consumer.partitions_for_topic(topic):
                    raise TopicNotFound(f"topic {topic!r} does not exist on {self.bootstrap}")
                ident = consumer._client.cluster.topic_id(topic)  # from the metadata it read
        finally:
            consumer.close()
        return None if ident is None else canonical_topic_id(ident.int >> 64, ident.int)

    def log_starts(self, topic: str) -> dict[int, int]:
        """Each partition's log start offset (records before it were deleted: retention)."""
        from kafka import TopicPartition

        consumer = self._consumer()  # one connection for the partitions and their starts
        try:
            with self._answered(f"log starts of {topic}"):
                listed = consumer.partitions_for_topic(topic)
                if not listed:
                    raise TopicNotFound(f"topic {topic!r} does not exist on {self.bootstrap}")
                partitions = [TopicPartition(topic, p) for p in sorted(listed)]
                found = consumer.beginning_offsets(partitions, timeout_ms=self._timeout_ms)
        finally:
            consumer.close()
        return {tp.partition: max(offset or 0, 0) for tp, offset in found.items()}

    def high_watermarks(self, topic: str) -> dict[int, int]:
        """Each partition's high watermark, taken from fetch responses.

        ListOffsets "latest" is not used: some brokers (Tansu) answer it with the base offset of
        the last record batch, which would cut a range short. A fetch always reports the high
        watermark, so we seek near the end, fetch once per partition, and read it from there.
        """
        from kafka import TopicPartition

        consumer = self._consumer()
        try:
            tps = [TopicPartition(topic, p) for p in self.partitions(topic)]
            consumer.assign(tps)
            with self._answered(f"end offsets of {topic}"):
                ends = consumer.end_offsets(tps, timeout_ms=self._timeout_ms)
            for tp, near_end in ends.items():
                consumer.seek(tp, near_end)
            deadline = time.monotonic() + self.timeout_s
            while True:
                consumer.poll(timeout_ms=200)
                known = [tp for tp in tps if consumer.highwater(tp) is not None]
                consumer.pause(*known)
                if len(known) == len(tps):
                    return {tp.partition: consumer.highwater(tp) for tp in tps}
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(f"no high watermark for {topic} within the timeout")
        finally:
            consumer.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        from kafka import TopicPartition

        consumer = self._consumer(group)
        try:
            result = {}
            for partition in self.partitions(topic):
                with self._answered(f"committed offsets of {group}"):
                    offset = consumer.committed(
                        TopicPartition(topic, partition), timeout_ms=self._timeout_ms
                    )
                result[partition] = offset if offset is not None else 0
            return result
        finally:
            consumer.close()

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        consumer = self._consumer(group)
        try:
            tps = {
                TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()
            }
            consumer.assign(list(tps))
            with self._answered(f"committing offsets of {group}"):
                consumer.commit(tps, timeout_ms=self._timeout_ms)
        finally:
            consumer.close()

    def read_many(self, ranges: list[OffsetRange]) -> list[pa.RecordBatch]:
        """``read`` of each range (``check_together``): this client reads them one by one."""
        check_together(ranges)
        return [self.read(r) for r in ranges]

    def read(self, offsets: OffsetRange) -> pa.RecordBatch:
        """All records of ``offsets``, in offset order, as one raw Arrow batch."""
        from kafka import TopicPartition
        from kafka.errors import OffsetOutOfRangeError

        columns: dict[str, list] = {name: [] for name in RAW_RECORD_SCHEMA.names}
        if offsets.size == 0:
            return pa.RecordBatch.from_pydict(columns, schema=RAW_RECORD_SCHEMA)
        tp = TopicPartition(offsets.topic, offsets.partition)
        if self._reader is None:
            self._reader = self._consumer()
        consumer = self._reader
        try:
            consumer.assign([tp])  # a seek drops records prefetched for an earlier range
            consumer.seek(tp, offsets.start)
            deadline = time.monotonic() + self.timeout_s
            budget = ReadBudget(self.max_range_bytes)
            while consumer.position(tp) < offsets.end:
                records = consumer.poll(timeout_ms=500, max_records=10_000).get(tp, [])
                if records:
                    deadline = time.monotonic() + self.timeout_s
                elif time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"no progress reading {offsets.name} at offset {consumer.position(tp)}"
                    )
                records = [r for r in records if r.offset < offsets.end]
                sizes = [_size(r) for r in records]
                if budget.count(offsets, sizes, [r.offset for r in records]):
                    columns = {name: [] for name in columns}  # read on only to find the splits
                    continue
                for record in records:
                    _append(columns, record)
            budget.refuse_over([offsets])
            first = columns["offset"][0] if columns["offset"] else None
            refuse_deleted_ranges([offsets], {offsets.partition: first}, self.log_starts)
        except OffsetOutOfRangeError as error:
            self.close()
            raise RecordsLost(
                f"reading {offsets.name}: records are no longer on the broker "
                f"(deleted before they were read): {error}"
            ) from error
        except BaseException:
            self.close()  # after a failure, start the next read on a fresh connection
            raise
        return pa.RecordBatch.from_pydict(columns, schema=RAW_RECORD_SCHEMA)


def _size(record) -> int:
    """The bytes of a record's key, value and headers."""
    return len(record.key or b"") + len(record.value or b"") + header_bytes(record.headers)


def _append(columns: dict[str, list], record) -> None:
    columns["topic"].append(record.topic)
    columns["partition"].append(record.partition)
    columns["offset"].append(record.offset)
    columns["timestamp_ms"].append(record.timestamp)
    columns["key"].append(record.key)
    columns["value"].append(record.value)
    headers = first_headers(record.headers or ())
    for column, name in (("format", FORMAT_HEADER), ("signature", SIGNATURE_HEADER)):
        header = headers.get(name)
        columns[column].append(header.decode("utf-8", "replace") if header is not None else None)
