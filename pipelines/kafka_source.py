"""Reading bounded offset ranges from Kafka, behind a small interface.

The pipeline only needs four things from Kafka: the partitions of a topic, where each partition
ends *now* (the high watermark), a group's committed offsets, and the records of one
``[start, end)`` range (or of several partitions' ranges at once). ``KafkaSource`` is that
interface; two clients implement it:

- ``confluent`` (default): confluent-kafka, on librdkafka (``pipelines/confluent_source.py``);
- ``kafka-python``: the pure-Python fallback (``pipelines/kafka_python_source.py``), for
  platforms without a librdkafka wheel.

Both take range ends from a fetch's high watermark, never from ListOffsets "latest" (some
brokers, Tansu among them, answer it with the base offset of the last record batch).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import pyarrow as pa

from schemas.records import echoed_text

FORMAT_HEADER = "rda-format"


def first_headers(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, bytes | None]:
    """Kafka headers by name; a repeated header counts with its first value."""
    found: dict[str, bytes | None] = {}
    for name, value in headers:
        found.setdefault(name, value)
    return found


# Apache Kafka's rule for topic names (``Topic.validate``). Files and folders are named after
# topics, so a name is checked before any is made of it: a broker that takes any name (Tansu
# takes ``../../published/x``) must not lead a path out of its folder.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def range_name(topic: str, partition: int, start: int, end: int) -> str:
    """The name of the files of a range (``OffsetRange.name``), its topic name unchecked: for
    what a journal of an earlier version names (a topic Kafka refuses that Tansu took)."""
    return f"{topic}-p{partition:04d}-{start:012d}-{end:012d}"


def check_topic_name(topic: str) -> str:
    """``topic``, if Kafka allows it as a topic name; else ``ValueError`` saying why."""
    if not isinstance(topic, str) or not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        shown = repr(echoed_text(topic, 64) if isinstance(topic, str) else topic)
        raise ValueError(
            f"{shown} is not a Kafka topic name (1 to 249 of A-Z a-z 0-9 . _ -, not . or ..)"
        )
    return topic


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Records ``start <= offset < end`` of one topic-partition."""

    topic: str
    partition: int
    start: int
    end: int

    def __post_init__(self) -> None:
        check_topic_name(self.topic)
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid offset range [{self.start}, {self.end})")

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def name(self) -> str:
        """A stable name for files derived from this range."""
        return range_name(self.topic, self.partition, self.start, self.end)

    def split(self, max_records: int) -> list[OffsetRange]:
        """Consecutive sub-ranges of at most ``max_records`` offsets each."""
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        return [
            OffsetRange(self.topic, self.partition, start, min(start + max_records, self.end))
            for start in range(self.start, self.end, max_records)
        ]

    def as_dict(self) -> dict:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "start": self.start,
            "end": self.end,
        }


class KafkaSource(Protocol):
    def partitions(self, topic: str) -> list[int]: ...

    def high_watermarks(self, topic: str) -> dict[int, int]: ...

    def committed(self, group: str, topic: str) -> dict[int, int]: ...

    def topic_id(self, topic: str) -> str | None: ...

    def log_starts(self, topic: str) -> dict[int, int]: ...

    def read(self, offsets: OffsetRange) -> pa.RecordBatch: ...

    def read_many(self, ranges: list[OffsetRange]) -> list[pa.RecordBatch]: ...

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None: ...

    def close(self) -> None: ...


def check_together(ranges: list[OffsetRange]) -> None:
    """Refuse ranges that cannot be read together (``KafkaSource.read_many``): they must be of
    one topic, each of another partition."""
    if len({r.topic for r in ranges}) > 1:
        raise ValueError(f"ranges read together must be of one topic: {sorted(ranges)}")
    if len({r.partition for r in ranges}) < len(ranges):
        raise ValueError(f"ranges read together must be of distinct partitions: {sorted(ranges)}")


class KafkaUnavailable(RuntimeError):
    """The broker did not answer in time."""


class RangeTooLarge(RuntimeError):
    """A range's records passed the reader's byte budget: the read went on to the range's end
    only to find where to split it, keeping none of them.

    ``splits`` are the offsets that start each part after the first: every part holds at most
    the budget, or one record alone. Its arguments are all positional so that the error travels
    whole through a child's pickling and Beam's re-raising (which re-creates an error from
    ``args`` with the step's name added to the message)."""

    def __init__(self, message: str, offsets: dict, splits: list[int], max_bytes: int) -> None:
        super().__init__(message, offsets, splits, max_bytes)

    @property
    def offsets(self) -> OffsetRange:
        return OffsetRange(**self.args[1])

    @property
    def splits(self) -> list[int]:
        return list(self.args[2])

    @property
    def max_bytes(self) -> int:
        return self.args[3]


def header_bytes(headers: Iterable[tuple[str, bytes | None]] | None) -> int:
    """The bytes of a record's headers, which count toward its size (``ReadBudget``): a record
    may carry its megabyte there and nothing in its value."""
    return sum(len(name) + len(value or b"") for name, value in headers or ())


class ReadBudget:
    """The bytes (keys, values, headers) one range may bring into memory (``None``: no bound).

    Kafka offsets say nothing of bytes, so a work item is planned by offsets; records of up to a
    megabyte each (the broker's limit) would otherwise let one item of 50,000 offsets hold tens
    of gigabytes. A reader counts each range's records as they arrive. Once they pass the
    budget it keeps none of them and reads on, counting, to mark where parts of at most the
    budget start (``splits``); at the end, ``refuse_over`` raises ``RangeTooLarge`` and the
    driver splits the work item there, once. One budget counts one read."""

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        # the range's current part: its bytes and whether it holds a record yet
        self._part: dict[OffsetRange, tuple[int, bool]] = {}
        self.splits: dict[OffsetRange, list[int]] = {}

    def count(
        self,
        offsets: OffsetRange,
        sizes: list[int],
        record_offsets: list[int] | Callable[[], list[int]],
    ) -> bool:
        """Count records of ``offsets`` just read (their sizes and offsets, in order); whether
        the range is over the budget (its records need not be kept any more). The offsets may
        come as a function that lists them: called only if a part ends among these records."""
        if self.max_bytes is None or not sizes:
            return offsets in self.splits
        used, started = self._part.get(offsets, (0, False))
        if (total := used + sum(sizes)) <= self.max_bytes:  # no part ends among these: no loop
            self._part[offsets] = (total, True)
            return offsets in self.splits
        if callable(record_offsets):
            record_offsets = record_offsets()
        for size, offset in zip(sizes, record_offsets, strict=True):
            if started and used + size > self.max_bytes:  # a part never starts empty
                self.splits.setdefault(offsets, []).append(offset)
                used = 0
            used, started = used + size, True
        self._part[offsets] = (used, started)
        return offsets in self.splits

    def refuse_over(self, ranges: list[OffsetRange]) -> None:
        """``RangeTooLarge`` for the first of ``ranges`` (read to their ends) over the budget."""
        for offsets in ranges:
            if splits := self.splits.get(offsets):
                raise RangeTooLarge(
                    f"{offsets.name} holds more than {self.max_bytes:,} bytes of records: "
                    f"{len(splits) + 1} parts, from offsets {splits[:5]}",
                    offsets.as_dict(), splits, self.max_bytes,
                )  # fmt: skip


class TopicNotFound(KeyError):
    """The broker has no such topic (yet)."""


class RecordsLost(RuntimeError):
    """The broker no longer holds records the stream has not read: its log of a partition
    starts after them (retention, deleted records) or ends before where the stream stands (the
    topic deleted and recreated, a log truncated). Reading on would skip them without a trace,
    so the stream stops instead: an outside fault that waiting does not mend, never retried."""


class Positions(NamedTuple):
    """Where a group and a topic stand, as a plan reads them: the group's committed offsets,
    the partitions' high watermarks and log starts, and the topic's id (None where the broker
    has none)."""

    committed: dict[int, int]
    ends: dict[int, int]
    topic_id: str | None = None
    log_starts: dict[int, int] | None = None  # where each partition's log starts, if asked


def canonical_topic_id(most: int, least: int) -> str | None:
    """A topic id (Kafka's 128-bit UUID, given as its two signed or unsigned 64-bit halves) as
    a UUID string; None for the zero id of a broker that has no topic ids."""
    value = ((most % (1 << 64)) << 64) | (least % (1 << 64))
    return str(uuid.UUID(int=value)) if value else None


class ReadOn(NamedTuple):
    """Where a plan reads each partition on from, the offsets it skips (those retention
    deleted before the stream read them, when the stream accepts such a loss; else none), and
    the partitions neither the journal nor the group names (started at their log start)."""

    starts: dict[int, int]
    lost: list[OffsetRange]
    first_seen: set[int]


def read_on_from(
    topic: str,
    positions: Positions,
    planned: dict[int, int],
    read_ids: set[str],
    accept_deleted: bool = False,
) -> ReadOn:
    """Where the stream reads each partition on from: the greater of the group's committed
    offset and the end of its journaled plans (``planned``, which names a partition from the
    first plan that saw it, even empty); a partition neither names starts at its log start
    (records deleted before then were never the stream's to read).

    ``RecordsLost`` if reading on would skip records without a trace: the topic is not one the
    stream read (``read_ids``: the ids its plans were made on), or a partition's log ends
    before, or starts after, where the stream stands on it. ``accept_deleted``: a log that
    starts after where the stream stands (retention) is read on from its start instead, and the
    offsets between are returned as ``lost`` (for the plan to record); the other two never are,
    as reading a new log's offsets again would repeat published records' keys."""
    _refuse_recreated_topic(topic, read_ids, positions.topic_id)
    log_starts = positions.log_starts or {}
    stands = {
        p: max(positions.committed.get(p, 0), planned.get(p, 0))
        for p in positions.ends.keys() | planned.keys()
    }
    _refuse_rewound_logs(topic, stands, positions.ends)
    known = {p: at for p, at in stands.items() if p in planned or at}
    deleted = deleted_ranges(topic, known, log_starts)
    if deleted and not accept_deleted:
        raise RecordsLost(
            f"the broker deleted records of {topic} before this stream read them (retention), "
            f"so nothing more of it is read: {offsets_text(deleted)}"
        )
    starts = {p: known[p] if p in known else log_starts.get(p, 0) for p in stands}
    starts |= {r.partition: r.end for r in deleted}
    return ReadOn(starts, deleted, stands.keys() - known.keys())


def deleted_ranges(
    topic: str, starts: dict[int, int], log_starts: dict[int, int]
) -> list[OffsetRange]:
    """Per partition whose log starts after where the stream stands on it (``starts``), the
    offsets between: the broker deleted them (retention) before the stream read them. Some
    brokers (Tansu) answer a fetch below the log start with the records after it, not an
    error, so this is asked, not waited for."""
    return [
        OffsetRange(topic, p, start, log_starts[p])
        for p, start in sorted(starts.items())
        if log_starts.get(p, 0) > start
    ]


def deleted_part(planned: OffsetRange, log_start: int) -> OffsetRange | None:
    """The part of a planned range below its partition's log start now (retention deleted it
    since the plan), or None."""
    if log_start <= planned.start:
        return None
    return OffsetRange(planned.topic, planned.partition, planned.start, min(log_start, planned.end))


def offsets_text(ranges: list[OffsetRange]) -> str:
    """``ranges`` named for a person: each partition and its first and last offsets."""
    return "; ".join(f"partition {r.partition}: offsets {r.start} to {r.end - 1}" for r in ranges)


def _refuse_recreated_topic(topic: str, read_ids: set[str], topic_id: str | None) -> None:
    """``RecordsLost`` if the topic's id is none the stream has read: it was deleted and
    recreated, its offsets start again, and where the stream stands says nothing of the new
    log (a new log longer than the old one would be read from the old offsets on)."""
    if topic_id is not None and read_ids and topic_id not in read_ids:
        raise RecordsLost(
            f"{topic} was deleted and recreated (its id is {topic_id}; the stream read "
            f"{', '.join(sorted(read_ids))}): its offsets start again, and the records of the "
            "new log below where the stream stands would never be read, so nothing more of it "
            "is read"
        )


def _refuse_rewound_logs(topic: str, starts: dict[int, int], ends: dict[int, int]) -> None:
    """``RecordsLost`` if a partition's log ends before where the stream stands on it
    (``starts``: the offsets it reads on from), or is gone: a log never gets shorter on a
    healthy broker. The records a new log holds below that offset would never be read."""
    behind = [
        f"partition {p} ends at offset {ends[p]}, the stream stands at {start}"
        if p in ends
        else f"partition {p} is gone, the stream stands at {start}"
        for p, start in sorted(starts.items())
        if ends.get(p, 0) < start
    ]
    if behind:
        raise RecordsLost(
            f"{topic}'s log is behind this stream (deleted and recreated, or truncated by the "
            "broker), and its records below where the stream stands would never be read, so "
            f"nothing more of it is read: {'; '.join(behind)}"
        )


def refuse_deleted_ranges(
    ranges: list[OffsetRange],
    first_offsets: dict[int, int | None],
    log_starts: Callable[[str], dict[int, int]],
) -> None:
    """``RecordsLost`` if a range read without its first record (``first_offsets``: by
    partition, the first offset the read kept, None for none) starts below its partition's
    log start now: retention deleted records between the plan and the read, and a broker
    that answers such a fetch with the records after the log start (Tansu) gave no error.
    The log starts are asked only when a read lacks its first record (compaction does that
    too, rarely)."""
    gapped = [r for r in ranges if r.size and (first_offsets.get(r.partition) or r.end) > r.start]
    if not gapped:
        return
    starts = log_starts(gapped[0].topic)
    parts = [(r, deleted_part(r, starts.get(r.partition, 0))) for r in gapped]
    deleted = [f"{r.name}: offsets {d.start} to {d.end - 1}" for r, d in parts if d is not None]
    if deleted:
        raise RecordsLost(
            f"the broker deleted records before this read took them (retention): "
            f"{'; '.join(deleted)}"
        )


CLIENTS = ("confluent", "kafka-python")
DEFAULT_CLIENT = "confluent"


@dataclass(frozen=True)
class KafkaSpec:
    """Where and how to read: the broker, the client library, and how long to wait for it."""

    bootstrap: str
    client: str = DEFAULT_CLIENT
    timeout_s: float = 30.0  # without an answer or progress: the driver then retries the batch
    max_range_bytes: int | None = None  # a range read past it fails: ``RangeTooLarge``

    def open(self) -> KafkaSource:
        return open_source(self.bootstrap, self.timeout_s, self.client, self.max_range_bytes)


def open_source(
    bootstrap: str,
    timeout_s: float = 30.0,
    client: str = DEFAULT_CLIENT,
    max_range_bytes: int | None = None,
) -> KafkaSource:
    """A ``KafkaSource`` on the named client (``CLIENTS``). ``max_range_bytes``: the bytes of
    records one range may hold (``ReadBudget``); None, no bound."""
    if client == "confluent":
        from pipelines.confluent_source import ConfluentSource

        return ConfluentSource(bootstrap, timeout_s, max_range_bytes=max_range_bytes)
    if client == "kafka-python":
        from pipelines.kafka_python_source import KafkaPythonSource

        return KafkaPythonSource(bootstrap, timeout_s, max_range_bytes)
    raise ValueError(f"unknown Kafka client {client!r} (known: {', '.join(CLIENTS)})")
