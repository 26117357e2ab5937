"""Drives a batch's event-time logic in-process, with crashes anywhere, for the property tests.

The stream is the simulated fleet's records, split over partitions by node as the producer does.
Each batch is journaled in a real ``BatchJournal``, its chunks are staged (``Protection.stage``)
and landed by the pipeline's own sink (``ChunkWriter``), then the event-time step
(``streaming.event_state.decide_batch``: one state per partition) runs against the real state
store, and the batch's state is journaled as the sequencer does. A crash is an exception raised
between two file writes or two journal steps; the "restart" redoes the unfinished batch from
its journaled plan. Kafka and the chain are left out (the broker-backed test covers them);
records repeating a key across batches are the sequencer's business, so the streams here have
none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import sinks.parquet
import sinks.state_store
from pipelines.graph import standardize_chunk
from pipelines.kafka_source import OffsetRange
from pipelines.protect import Protection
from schemas.records import RAW_RECORD_SCHEMA
from simulator.messages import Message
from sinks.layout import DataLayout
from sinks.parquet import ChunkWriter
from sinks.state_store import StateStore
from streaming import event_state, event_time
from streaming.journal import BatchJournal

TOPIC = "stream"


class Crash(Exception):
    """A simulated kill: everything written so far stays, nothing after it happens."""


def partitioned(messages: list[Message], partitions: int) -> dict[int, pa.RecordBatch]:
    """The records each partition holds, keyed by node as the producer keys them."""
    by_partition: dict[int, list[Message]] = {p: [] for p in range(partitions)}
    for message in messages:
        by_partition[int(message.key.decode().rsplit("-", 1)[1]) % partitions].append(message)
    batches = {}
    for partition, mine in by_partition.items():
        n = len(mine)
        batches[partition] = pa.RecordBatch.from_pydict(
            {
                "topic": [TOPIC] * n,
                "partition": [partition] * n,
                "offset": list(range(n)),
                "timestamp_ms": [m.timestamp_ms for m in mine],
                "key": [m.key for m in mine],
                "value": [m.value for m in mine],
                "format": [None] * n,
                "signature": [None] * n,
            },
            schema=RAW_RECORD_SCHEMA,
        )
    return batches


@dataclass
class CrashPlan:
    """Counts file writes and journal steps down; raises ``Crash`` each time a count ends."""

    countdowns: list[int] = field(default_factory=list)
    crashes: int = 0

    def tick(self) -> None:
        if not self.countdowns:
            return
        self.countdowns[0] -= 1
        if self.countdowns[0] <= 0:
            self.countdowns.pop(0)
            self.crashes += 1
            raise Crash


@dataclass
class Harness:
    root: Path
    raw: dict[int, pa.RecordBatch]
    protection: Protection
    crash: CrashPlan = field(default_factory=CrashPlan)
    journal: BatchJournal | None = None
    closed: dict[int, list[dict]] = field(default_factory=dict)  # batch -> windows it closed
    stats: dict[int, list[dict]] = field(default_factory=dict)  # batch -> receipts' quality
    held: list[int] = field(default_factory=list)  # records on hold after each batch
    receipts: dict[int, list[dict]] = field(default_factory=dict)  # batch -> its files' receipts
    plans: dict[int, dict] = field(default_factory=dict)  # batch -> its plan

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.root)

    def run(self, cuts: list[dict[int, int]], chunk: int, flush_last: bool = True) -> None:
        """One batch per cut (records per partition), each redone until it survives."""
        # One connection throughout: each journal statement is committed on its own, so a
        # crash between two of them leaves what a killed process would.
        with BatchJournal(self.layout.journal) as self.journal:
            self._run(cuts, chunk, flush_last)

    def _run(self, cuts: list[dict[int, int]], chunk: int, flush_last: bool) -> None:
        next_offset = dict.fromkeys(self.raw, 0)
        for number, cut in enumerate(cuts):
            ranges = []
            for partition, n in sorted(cut.items()):
                end = min(next_offset[partition] + n, self.raw[partition].num_rows)
                if end > next_offset[partition]:
                    ranges.append(OffsetRange(TOPIC, partition, next_offset[partition], end))
                    next_offset[partition] = end
            flush = flush_last and number == len(cuts) - 1
            self._plan(ranges, chunk, flush)
            while self._unfinished():
                with suppress(Crash):  # the process died; the next start redoes the batch
                    self._sequence(self._unfinished()[0])

    def _plan(self, ranges: list[OffsetRange], chunk: int, flush: bool) -> None:
        batch_id = self.journal.next_batch_id()
        plan = {
            "batch_id": batch_id,
            "planned_at": "",
            "ranges": [r.as_dict() for r in ranges],
            "chunks": [c.as_dict() for r in ranges for c in r.split(chunk)],
            "flush": flush,
            "flush_partitions": sorted(self.raw) if flush else [],
        }
        self.journal.record_plan(batch_id, TOPIC, plan)

    def _unfinished(self) -> list[int]:
        return [e["batch_id"] for e in self.journal.unfinished_batches(TOPIC)]

    def _sequence(self, batch_id: int) -> None:
        journal = self.journal
        entry = journal.batch(batch_id)
        plan = entry["plan"]
        receipts = [self._land(OffsetRange(**c)) for c in plan["chunks"]]
        self.crash.tick()
        step = (self._read, self.protection, None)
        outcome = event_state.decide_batch(self.layout, TOPIC, plan, receipts, step, journal)
        self.crash.tick()
        if entry["state"] == "planned":
            plan["state"] = outcome.state
            journal.record_sequencing(batch_id, plan, records_held=outcome.records["held"])
        self.crash.tick()
        journal.set_state(batch_id, "done")
        self.closed[batch_id] = outcome.closed
        self.stats[batch_id] = [r.get("quality", {}) for r in outcome.receipts]
        self.receipts[batch_id], self.plans[batch_id] = outcome.receipts, plan
        self.held.append(outcome.held_total)

    def _land(self, chunk: OffsetRange) -> dict:
        raw = self._read(chunk)
        staged = standardize_chunk(raw, "rda.node.v1", self.protection)  # the DoFn's own work
        return ChunkWriter(str(self.root))(chunk, staged)

    def _read(self, chunk: OffsetRange) -> pa.RecordBatch:
        return self.raw[chunk.partition].slice(chunk.start, chunk.size)

    # -- what the stream left -----------------------------------------------------------------

    def published(self) -> dict[str, list[dict]]:
        """Every published row, by dataset, in a canonical order."""
        rows: dict[str, list[dict]] = {}
        for path in sorted(self.layout.published.glob("*/shards/*/data/*.parquet")):
            dataset = path.parents[3].name
            rows.setdefault(dataset, []).extend(pq.read_table(path).to_pylist())
        return {d: sorted(r, key=_row_order) for d, r in sorted(rows.items())}

    def private_records(self, kind: str) -> list[tuple[int, int, str]]:
        """(partition, offset, reason code) of every record in ``private/<kind>/``."""
        found = []
        for path in sorted((self.layout.private / kind).rglob("*.parquet")):
            table = pq.read_table(path, columns=["partition", "offset", "reason_code"])
            found += zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
        return sorted(found)

    def windows(self) -> list[dict]:
        return sorted((w for ws in self.closed.values() for w in ws), key=_window_order)

    def dataset_counts(self) -> dict[str, Counter]:
        """Each dataset's quality counts over the whole stream (as its manifests add them up)."""
        totals: dict[str, Counter] = {}
        for receipts in self.stats.values():
            for quality in receipts:
                for dataset, stats in quality.items():
                    _add(totals.setdefault(dataset, Counter()), stats)
        journal = BatchJournal(self.layout.journal, read_only=True)
        for partition in sorted(self.raw):  # each partition's state carries its own pending
            head = journal.state_head(TOPIC, partition)
            if head is None:
                continue
            doc, _ = StateStore(self.layout, TOPIC, partition).read_snapshot(head)
            for dataset, pending in doc.get("pending", {}).items():
                for stats in pending["stats"]:
                    _add(totals.setdefault(dataset, Counter()), stats)
        return dict(sorted(totals.items()))


def _add(total: Counter, stats: dict) -> None:
    for key in ("rows", "null_cells", "cells", "suppressed", "published"):
        total[key] += stats.get(key, 0)
    for key in ("quarantined", "flags"):
        total.update({f"{key}.{code}": n for code, n in stats.get(key, {}).items()})


def _row_order(row: dict) -> tuple:
    return (row.get("source_partition"), row.get("source_offset"), str(row))


def _window_order(window: dict) -> tuple:
    return (window["window_start"], window["dataset"], window.get("partition", -1))


@contextmanager
def crashing_writes(crash: CrashPlan) -> Iterator[None]:
    """Every file the stage, the step and the state store write may be the last one."""

    def writes(original: Callable) -> Callable:
        def write(*args, **kwargs):
            crash.tick()
            return original(*args, **kwargs)

        return write

    targets = [
        (sinks.parquet, "write_parquet"),
        (sinks.parquet, "write_private_parquet"),
        (sinks.state_store, "write_private_parquet"),
        (event_time, "write_parquet"),
    ]
    originals = [getattr(module, name) for module, name in targets]
    for (module, name), original in zip(targets, originals, strict=True):
        setattr(module, name, writes(original))
    try:
        yield
    finally:
        for (module, name), original in zip(targets, originals, strict=True):
            setattr(module, name, original)
