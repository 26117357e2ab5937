"""The event-time core: what a stretch of stream publishes, holds, quarantines and releases.

Pure functions over staged rows (``pipelines/staged.py``) and a ``TopicState`` carried from one
call to the next; the streaming driver keeps the state in a crash-safe store between batches
(``streaming/event_time.py``), ``Protection`` runs it over one input at once. However the stream
is cut into calls, the outcome is the same, row by row:

1. **Watermarks** per partition advance with each record (``validators/event_time.py``); a row is
   *late* if its window had closed in its partition before it arrived.
2. **Sequence checks** judge each row against its node's state (``validators/sequence.py``):
   teleports are quarantined, counter resets and flat lines flagged.
3. Rows of **windowed** datasets (those with quasi-identifiers: the sessions) are *held* until
   their window closes; a late one is quarantined (``window_closed``): a closed window is never
   changed. Every other row is published at once, with its flags (``late`` included).
4. A window **closes** once every partition's watermark has passed its end plus the allowed
   lateness; its held rows are then *released*: k-anonymity over the window, the window's DP
   counts, and its quality figures, final.

Records stay whole: a record with a quarantined row is quarantined; a record with a held row is
held (all its rows), and suppressed whole if k-anonymity withholds one of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import staged
from pipelines.quality_counts import cell_counts, flag_counts, measured, row_nulls, stats_of
from schemas.published import FLAGS_FIELD, PrivacySettings
from schemas.registry import schema_for_dataset
from validators import event_time
from validators.event_time import WindowSettings
from validators.quality import QualitySettings, scatter, sequence_flags, teleport_reasons
from validators.sequence import SequenceState, check_sequences, input_columns, sequence_inputs

WINDOW_CLOSED = "window_closed"
HELD_RECORDS = "held_records"  # in a window's tally: records waiting for it
REJECTS_SCHEMA = pa.schema(
    [
        ("source_partition", pa.int32()),
        ("source_offset", pa.int64()),
        ("reason_code", pa.string()),
        ("reason", pa.string()),
    ]
)
_OFFSET_BITS = 40  # a record's key: partition << 40 | offset


@dataclass(frozen=True)
class Settings:
    window: WindowSettings = field(default_factory=WindowSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)


@dataclass
class TopicState:
    """Everything carried from one stretch of a topic's stream to the next (held rows apart)."""

    watermarks: dict[int, int] = field(default_factory=dict)  # partition -> µs
    closed_through: int | None = None  # µs: every window closing at or before it is closed
    sequences: dict[str, SequenceState] = field(default_factory=dict)
    # Open windows, by start (µs): records held for it, and per dataset its quality counts.
    windows: dict[int, dict] = field(default_factory=dict)

    def sequence(self, dataset: str) -> SequenceState:
        if dataset not in self.sequences:
            self.sequences[dataset] = SequenceState.empty(schema_for_dataset(dataset).name)
        return self.sequences[dataset]

    @property
    def held_records(self) -> int:
        return sum(w.get(HELD_RECORDS, 0) for w in self.windows.values())

    def held_windows(self) -> dict[int, int]:
        """Open windows with records waiting for them -> how many, oldest first."""
        return {w: t[HELD_RECORDS] for w, t in sorted(self.windows.items()) if t.get(HELD_RECORDS)}

    def add(self, window: int, dataset: str, counts: dict[str, int]) -> None:
        tally = self.windows.setdefault(window, {HELD_RECORDS: 0}).setdefault(dataset, {})
        for name, n in counts.items():
            if n:
                tally[name] = tally.get(name, 0) + int(n)


@dataclass
class Decision:
    """What one stretch (a chunk) of stream does now."""

    published: dict[str, pa.Table]  # published schema, flags set: to land now
    held: dict[str, pa.Table]  # staged rows with their flags and ``_window``: to hold
    quarantined: pa.Table  # REJECTS_SCHEMA: records quarantined by the stateful checks
    records: dict[str, int]  # published, held, quarantined (records)
    stats: dict[str, dict]  # per dataset, the manifest's quality counts


def advance(state: TopicState, rows: dict[str, pa.Table], settings: Settings) -> Decision:
    """Decide the rows of one stretch of stream (a partition's range, or a whole input)."""
    datasets = sorted(d for d, t in rows.items() if t.num_rows)
    rows = {d: stream_order(rows[d]) for d in datasets}
    before = _watermarks(state, rows)
    judged = {d: _judge(state, d, rows[d], before[d], settings) for d in datasets}
    rejects = _record_rejects(judged)
    rejected = set(rejects.column("record").to_pylist())
    held = _held_records(judged, rejected, settings.window)
    decision = Decision({}, {}, rejects.drop_columns(["record"]), {}, {})
    published: set[int] = set()
    for dataset in datasets:
        j = judged[dataset]
        published |= _split(state, dataset, rows[dataset], j, rejected, held, decision, settings)
    decision.records = {
        "published": len(published),
        "held": len(held),
        "quarantined": rejects.num_rows,
    }
    for window in held.values():
        state.windows.setdefault(window, {HELD_RECORDS: 0})[HELD_RECORDS] += 1
    return decision


def windows_to_close(
    state: TopicState, partitions: list[int], settings: Settings, flush: bool = False
) -> list[int]:
    """Advance the topic's closed point; the open windows it closes now, oldest first."""
    state.closed_through = event_time.closed_through(
        state.closed_through, state.watermarks, partitions, settings.window, flush
    )
    if state.closed_through is None:
        return []
    closes = settings.window.closes_at
    return sorted(w for w in state.windows if closes(w) <= state.closed_through)


def held_in(rows: pa.Table, window: int) -> pa.Table:
    """The held rows waiting for ``window``."""
    return rows.filter(pc.equal(rows.column(staged.WINDOW), window))


def stream_order(rows: pa.Table) -> pa.Table:
    keys = record_keys(rows)
    if (keys[1:] >= keys[:-1]).all():  # as staged, mostly: the (stable) sort would keep it
        return rows.combine_chunks()
    order = [("source_partition", "ascending"), ("source_offset", "ascending")]
    return rows.take(pc.sort_indices(rows, order)).combine_chunks()


def record_keys(rows: pa.Table) -> np.ndarray:
    partitions = np.asarray(rows.column("source_partition"), np.int64)
    return (partitions << _OFFSET_BITS) | np.asarray(rows.column("source_offset"), np.int64)


def record_of(key: int) -> tuple[int, int]:
    return key >> _OFFSET_BITS, key & ((1 << _OFFSET_BITS) - 1)


def _watermarks(state: TopicState, rows: dict[str, pa.Table]) -> dict[str, np.ndarray]:
    """Each row's partition watermark before its record, over the rows of every dataset."""
    names = list(rows)
    if not names:
        return {}
    keys = np.concatenate([record_keys(rows[d]) for d in names])
    times = np.concatenate([event_time.micros(rows[d].column(staged.EVENT_TIME)) for d in names])
    passed = np.concatenate(
        [np.asarray(pc.is_null(rows[d].column(staged.QUARANTINE)), bool) for d in names]
    )
    marks = event_time.watermarks(
        keys >> _OFFSET_BITS, keys & ((1 << _OFFSET_BITS) - 1), times, passed, state.watermarks
    )
    state.watermarks = marks.after
    bounds = np.cumsum([0] + [rows[d].num_rows for d in names])
    return {d: marks.before[bounds[i] : bounds[i + 1]] for i, d in enumerate(names)}


@dataclass
class _Judged:
    keys: np.ndarray  # record key per row
    times: np.ndarray  # event time, µs
    before: np.ndarray  # the partition's watermark before the row's record
    late: np.ndarray
    staged_code: pa.Array  # the stage's quarantine code, else null
    code: pa.Array  # this step's quarantine code (teleport, window_closed), else null
    reason: pa.Array
    flags: pa.Array


def _judge(
    state: TopicState, dataset: str, rows: pa.Table, before: np.ndarray, settings: Settings
) -> _Judged:
    """Lateness and the sequence checks of one dataset's rows (in stream order)."""
    times = event_time.micros(rows.column(staged.EVENT_TIME))
    late = event_time.late(times, before, state.closed_through, settings.window)
    staged_code = rows.column(staged.QUARANTINE).combine_chunks()
    passed = np.asarray(pc.is_null(staged_code), bool)
    name = schema_for_dataset(dataset).name
    columns = staged.canonical_view(rows, input_columns(name))
    if not passed.all():  # the rows the stage quarantined take no part (a copy of the others)
        kept = pa.array(np.flatnonzero(passed), pa.int64())
        columns = {k: v.take(kept) for k, v in columns.items()}
    inputs = sequence_inputs(name, columns, pa.array(times[passed], pa.int64()))
    result, state.sequences[dataset] = check_sequences(
        inputs, state.sequence(dataset), settings.quality.sequence
    )
    jump = scatter(result.teleport_km, passed, None)
    windowed = staged.is_windowed(dataset)
    closed = pa.array(passed & late & windowed)
    none = pa.scalar(None, pa.string())
    code = pc.if_else(pc.is_valid(jump), pa.scalar("teleport"), none)
    code = pc.if_else(closed, pa.scalar(WINDOW_CLOSED), code)
    reason = pa.nulls(len(rows), pa.string())
    if jump.null_count < len(jump):  # teleports are rare: most chunks have no reason to write
        reason = pc.if_else(pc.is_valid(jump), teleport_reasons(pc.fill_null(jump, 0.0)), none)
    if pc.any(closed).as_py():
        reason = pc.if_else(closed, _closed_reasons(times, settings.window), reason)
    flags = sequence_flags(
        pa.array(late & (not windowed)),
        scatter(result.counter_reset, passed, False),
        scatter(result.flat_line, passed, False),
    ).flags
    return _Judged(record_keys(rows), times, before, late, staged_code, code, reason, flags)


def _closed_reasons(times: np.ndarray, settings: WindowSettings) -> pa.Array:
    seconds = settings.window_of(times) // 1_000_000
    starts = pa.array(seconds, pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    return pc.binary_join_element_wise(
        "its event-time window starting ",
        pc.strftime(starts, format="%Y-%m-%dT%H:%M:%SZ"),
        f" had closed ({settings.window_s} s windows, {settings.allowed_lateness_s} s allowed "
        "lateness); a published window is never changed",
        "",
    )


def _record_rejects(judged: dict[str, _Judged]) -> pa.Table:
    """One reject per record quarantined by this step: its first reason, datasets in order."""
    schema = pa.schema([("record", pa.int64()), *REJECTS_SCHEMA])
    tables = [schema.empty_table()]
    for j in judged.values():  # datasets in name order
        mask = np.asarray(pc.is_valid(j.code), bool)
        keys = j.keys[mask]
        columns = [
            pa.array(keys, pa.int64()),
            pa.array(keys >> _OFFSET_BITS, pa.int32()),
            pa.array(keys & ((1 << _OFFSET_BITS) - 1), pa.int64()),
            pc.filter(j.code, pa.array(mask)),
            pc.filter(j.reason, pa.array(mask)),
        ]
        tables.append(pa.Table.from_arrays(columns, schema=schema))
    table = pa.concat_tables(tables)
    firsts = table.group_by("record", use_threads=False).aggregate(
        [(name, "first") for name in REJECTS_SCHEMA.names]
    )
    return firsts.rename_columns(["record", *REJECTS_SCHEMA.names]).sort_by("record")


def _held_records(
    judged: dict[str, _Judged], rejected: set[int], settings: WindowSettings
) -> dict[int, int]:
    """Record -> the window it waits for: records with an on-time row of a windowed dataset."""
    held: dict[int, int] = {}
    for dataset, j in judged.items():
        if not staged.is_windowed(dataset):
            continue
        waiting = np.asarray(pc.is_null(j.staged_code), bool) & ~j.late
        windows = settings.window_of(j.times[waiting]).tolist()
        for record, window in zip(j.keys[waiting].tolist(), windows, strict=True):
            if record not in rejected:
                held[record] = max(held.get(record, window), window)
    return held


def _split(
    state: TopicState,
    dataset: str,
    rows: pa.Table,
    j: _Judged,
    rejected: set[int],
    held: dict[int, int],
    decision: Decision,
    settings: Settings,
) -> set[int]:
    """A dataset's rows to publish now and to hold; its quality counts. Returns the records
    published now."""
    alive = np.asarray(pc.is_null(j.staged_code), bool) & ~np.isin(j.keys, list(rejected))
    waiting = alive & np.isin(j.keys, list(held))
    now = alive & ~waiting
    flagged = rows.set_column(rows.schema.get_field_index(FLAGS_FIELD), FLAGS_FIELD, j.flags)
    published = staged.published_part(flagged.filter(pa.array(now)), dataset)
    if published.num_rows:
        decision.published[dataset] = published
    if waiting.any():
        windows = [held[k] for k in j.keys[waiting].tolist()]
        decision.held[dataset] = flagged.filter(pa.array(waiting)).append_column(
            staged.WINDOW, pa.array(windows, pa.int64())
        )
    codes = _record_codes(j, rejected, decision.quarantined)
    _tally(state, dataset, j, codes, now | waiting, now, flagged, settings)
    null_cells, cells = cell_counts(published)
    decision.stats[dataset] = stats_of(
        published,
        rows=rows.num_rows,
        quarantined=Counter(c for c in codes.to_pylist() if c is not None),
        flags=flag_counts(pc.filter(j.flags, pa.array(now | waiting))),
        null_cells=null_cells,
        cells=cells,
    )
    return set(j.keys[now].tolist())


def _record_codes(j: _Judged, rejected: set[int], rejects: pa.Table) -> pa.Array:
    """Per row, the code its record was quarantined with (in the stage or now), else null."""
    if not rejected:
        return j.staged_code
    by_record = dict(
        zip(record_keys(rejects).tolist(), rejects.column("reason_code").to_pylist(), strict=True)
    )
    now = pa.array([by_record.get(k) for k in j.keys.tolist()], pa.string())
    return pc.coalesce(j.staged_code, now)


def _marks_after(state: TopicState, keys: np.ndarray) -> np.ndarray:
    """Each row's partition watermark after the batch (``NO_TIME`` where it has none)."""
    partitions = keys >> _OFFSET_BITS
    marks = np.full(len(keys), event_time.NO_TIME, np.int64)
    for partition in np.unique(partitions).tolist():
        marks[partitions == partition] = state.watermarks.get(partition, event_time.NO_TIME)
    return marks


def _tally(
    state: TopicState,
    dataset: str,
    j: _Judged,
    codes: pa.Array,
    kept: np.ndarray,
    now: np.ndarray,
    rows: pa.Table,
    settings: Settings,
) -> None:
    """Add each row to the quality counts of the window it counts in."""
    skewed = np.asarray(pc.fill_null(pc.equal(j.staged_code, "clock_skew"), False), bool)
    # A row the stage quarantined for having no event time counts where its partition's
    # stream was: its watermark before the row, else after the batch; with neither, in no
    # window (int64's minimum has a window in the year 294,247, which never closes).
    timeless = j.times == event_time.NO_TIME
    placed = np.where(j.before != event_time.NO_TIME, j.before, _marks_after(state, j.keys))
    times = np.where(timeless, placed, j.times)
    counted = times != event_time.NO_TIME
    on_time = ~j.late & ~skewed & ~timeless
    window = event_time.attributed_window(
        times, j.before, on_time, state.closed_through, settings.window
    )
    published = staged.published_names(dataset)  # a cast to their types changes no null
    nulls, columns = row_nulls(rows.select(published)), len(measured(published))
    for w in np.unique(window[counted]).tolist():
        mine = (window == w) & counted
        counts = Counter(c for c in pc.filter(codes, pa.array(mine)).to_pylist() if c)
        counts.update(flag_counts(pc.filter(j.flags, pa.array(mine & kept))))
        published_here = mine & now
        counts.update(
            rows=int(mine.sum()),
            null_cells=int(nulls[published_here].sum()),
            cells=int(published_here.sum()) * columns,
        )
        state.add(int(w), dataset, counts)
