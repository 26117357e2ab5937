"""Event time: windows, per-partition watermarks, and what "late" means.

Every row belongs to the event-time window (``window_s``, one hour by default) holding its event
time. A partition's *watermark* is the latest event time among the records it has delivered so
far (records that passed their checks; a clock that runs ahead is quarantined first, so it cannot
drag the watermark into the future). A row is **late** when, before its record arrived, its own
partition's watermark had already passed its window's end plus the allowed lateness — it comes
after its window was closed. An orderly backfill of old data is not late: its watermark is as
old as the data.

Lateness is judged against the row's own partition, from the records before it in that
partition: a function of the stream, not of how the stream was cut into batches, nor of when it
was read. A window closes for a whole topic once every partition's watermark has passed its end
plus the allowed lateness (``closed_through``); every on-time row of it has then arrived, since a
row arriving later in a partition that has passed the window is late by definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NO_TIME = np.iinfo(np.int64).min  # a watermark before any record


@dataclass(frozen=True)
class WindowSettings:
    window_s: int = 3600  # event-time windows of an hour: k-anonymity's time unit
    allowed_lateness_s: int = 300  # how long after its end a window waits for stragglers

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.allowed_lateness_s < 0:
            raise ValueError("the window must be positive and the allowed lateness not negative")

    @property
    def window_us(self) -> int:
        return self.window_s * 1_000_000

    @property
    def lateness_us(self) -> int:
        return self.allowed_lateness_s * 1_000_000

    def window_of(self, times_us: np.ndarray) -> np.ndarray:
        """The start (µs) of the window holding each time."""
        return np.floor_divide(times_us, self.window_us) * self.window_us

    def closes_at(self, window_start_us: int) -> int:
        """The watermark (µs) at which a window closes."""
        return window_start_us + self.window_us + self.lateness_us

    def first_open_window(self, closed_through: int | None) -> int | None:
        """The earliest window still open when the topic is closed through ``closed_through``."""
        if closed_through is None:
            return None
        # closes_at(w) > closed_through  <=>  w > closed_through - window - lateness
        return (closed_through - self.lateness_us) // self.window_us * self.window_us


@dataclass(frozen=True)
class Watermarks:
    """Per row (in stream order): the watermark of its partition before its record arrived."""

    before: np.ndarray  # µs, NO_TIME when the partition had delivered nothing yet
    after: dict[int, int]  # partition -> watermark after the rows given


def watermarks(
    partitions: np.ndarray,
    offsets: np.ndarray,
    times_us: np.ndarray,
    contributes: np.ndarray,
    start: dict[int, int],
) -> Watermarks:
    """Each row's partition watermark before its record, continuing from ``start``.

    ``contributes``: whether a row's event time may advance the watermark (rows of records that
    passed their checks). Rows of one record share its offset: none sees the record itself.
    """
    n = len(times_us)
    before = np.full(n, NO_TIME, np.int64)
    after = dict(start)
    order = np.lexsort((offsets, partitions))
    for partition in np.unique(partitions):
        rows = order[partitions[order] == partition]
        own = np.where(contributes[rows], times_us[rows], NO_TIME)
        record_offsets = offsets[rows]
        # One contribution per record (its latest row), then the running maximum over records.
        starts = np.flatnonzero(np.r_[True, record_offsets[1:] != record_offsets[:-1]])
        per_record = np.maximum.reduceat(own, starts) if len(rows) else own
        seed = after.get(int(partition), NO_TIME)
        through = np.maximum.accumulate(np.maximum(per_record, seed))
        record_before = np.r_[seed, through[:-1]]
        before[rows] = np.repeat(record_before, np.diff(np.r_[starts, len(rows)]))
        if len(through) and through[-1] != NO_TIME:
            after[int(partition)] = int(through[-1])
    return Watermarks(before, after)


def late(
    times_us: np.ndarray, before: np.ndarray, closed_through: int | None, settings: WindowSettings
) -> np.ndarray:
    """Rows whose window had closed before they arrived (in their partition, or for the topic)."""
    seen = np.maximum(before, NO_TIME if closed_through is None else closed_through)
    return settings.window_of(times_us) + settings.window_us + settings.lateness_us <= seen


def attributed_window(
    times_us: np.ndarray,
    before: np.ndarray,
    on_time: np.ndarray,
    closed_through: int | None,
    settings: WindowSettings,
) -> np.ndarray:
    """The window each row counts in: its own when on time; else the window the stream was in
    when it arrived (its partition's watermark), never one already closed."""
    arrival = np.where(before == NO_TIME, times_us, before)
    window = np.where(on_time, settings.window_of(times_us), settings.window_of(arrival))
    first_open = settings.first_open_window(closed_through)
    return window if first_open is None else np.maximum(window, first_open)


def closed_through(
    previous: int | None,
    partition_marks: dict[int, int],
    partitions: list[int],
    settings: WindowSettings,
    flush: bool = False,
) -> int | None:
    """How far the topic's windows are closed: the slowest partition's watermark (never back).

    ``partitions``: those that hold windows open (every partition that has records). With
    ``flush`` (end of input) every window holding a record seen so far closes.
    """
    marks = [partition_marks.get(p) for p in partitions]
    result = previous
    if marks and all(m is not None for m in marks):
        slowest = min(marks)
        result = slowest if result is None else max(result, slowest)
    if flush and partition_marks:
        latest = max(partition_marks.values())
        through = settings.closes_at(int(settings.window_of(np.array([latest]))[0]))
        result = through if result is None else max(result, through)
    return result


def micros(values: pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds (nulls as NO_TIME)."""
    return np.asarray(pc.fill_null(values.cast(pa.int64()), NO_TIME), np.int64)
