"""Records a read consumed past its ranges' ends, kept for the read that goes on from there.

librdkafka answers a fetch with up to ``max.partition.fetch.bytes`` of a partition whatever the
range asks for, and ``consume()`` hands back what it fetched, in order: a read that reaches a
range's end within a fetch has taken the records after it too. The batches of a stream read each
partition's ranges back to back, so the next batch's read starts exactly there; every record
consumed past an end was fetched, decoded and dropped, then fetched again. Measured on the bench's
backlog in 8 batches of 4 ranges, a source a batch: 283,757 records consumed to keep 206,120,
2.00 CPU-s and 1.76 s; with them kept, 206,120, 1.81 CPU-s and 1.65 s (medians of 12 alternated
runs; 10 of the 12 pairs took less CPU).

Kafka never changes the record at an offset (the plans, their redo after a crash and the
committed offsets all rest on it), so the records consumed past a range's end are the first
records of the range that starts there: they are kept, per broker, topic and partition, for the
read that starts at that offset. What is kept is bounded: ``MAX_KEPT_BYTES`` of keys and values
in all, for ``MAX_AGE_S`` (a backlog's next batch reads within a second; nothing is kept across
an idle stream), and nothing after a failed read or in a forked child.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.kafka_source import OffsetRange

MAX_KEPT_BYTES = 16 << 20
MAX_AGE_S = 10.0


@dataclass(frozen=True)
class _Kept:
    start: int  # the offset the records go on from: the end of the range they were read past
    messages: list[Any]  # consumed in order, offsets increasing, the first at or after ``start``
    size: int  # bytes of their keys and values
    at: float  # when kept (``clock``)


class PastEnds:
    """Records consumed past the ends of ranges, by (bootstrap, topic, partition)."""

    def __init__(
        self,
        max_bytes: int = MAX_KEPT_BYTES,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes, self.max_age_s, self.clock = max_bytes, max_age_s, clock
        self._kept: dict[tuple[str, str, int], _Kept] = {}

    @property
    def size(self) -> int:
        """Bytes of keys and values kept."""
        return sum(kept.size for kept in self._kept.values())

    def keep(self, bootstrap: str, offsets: OffsetRange, messages: list[Any]) -> None:
        """Keep ``messages``, consumed after the end of ``offsets`` (in the order consumed), for
        a read starting at that end: those in offset order from it, within the byte bound."""
        self._store((bootstrap, offsets.topic, offsets.partition), offsets.end, messages, None)

    def _store(
        self, key: tuple[str, str, int], start: int, messages: list[Any], at: float | None
    ) -> None:
        run, size, last = [], 0, start - 1
        for message in messages:
            offset = message.offset()
            if offset <= last:  # out of order: what follows is not known to be contiguous
                break
            grown = size + len(message.key() or b"") + len(message.value() or b"")
            if grown > self.max_bytes:
                break
            run.append(message)
            size, last = grown, offset
        self._kept.pop(key, None)
        if run:
            self._kept[key] = _Kept(start, run, size, self.clock() if at is None else at)
            self._bound(key)

    def take(self, bootstrap: str, offsets: OffsetRange) -> tuple[list[Any], int]:
        """The kept records at the start of ``offsets`` and the offset to read on from (the
        range's start when none is kept there). Records kept past its end stay for the range
        after it."""
        key = (bootstrap, offsets.topic, offsets.partition)
        kept = self._kept.pop(key, None)
        if kept is None or kept.start != offsets.start or self._expired(kept):
            return [], offsets.start
        inside = [m for m in kept.messages if m.offset() < offsets.end]
        if len(inside) < len(kept.messages):  # the range ends among them: read whole
            self._store(key, offsets.end, kept.messages[len(inside) :], kept.at)
            return inside, offsets.end
        # Every offset up to the last kept one is covered: Kafka has no record between them.
        return inside, kept.messages[-1].offset() + 1

    def clear(self) -> None:
        self._kept.clear()

    def forget(self, bootstrap: str) -> None:
        """Drop what was kept of ``bootstrap``'s partitions (after a failed read)."""
        for key in [key for key in self._kept if key[0] == bootstrap]:
            del self._kept[key]

    def _expired(self, kept: _Kept) -> bool:
        return self.clock() - kept.at > self.max_age_s

    def _bound(self, newest: tuple[str, str, int]) -> None:
        """Drop expired records, then the oldest others than ``newest``'s while over the bound."""
        for key in [key for key, kept in self._kept.items() if self._expired(kept)]:
            del self._kept[key]
        for key in sorted(self._kept, key=lambda key: self._kept[key].at):
            if self.size <= self.max_bytes:
                return
            if key != newest:
                del self._kept[key]


# The process's: a stream's landing child builds a source for each batch's pipeline.
PAST_ENDS = PastEnds()
os.register_at_fork(after_in_child=PAST_ENDS.clear)
