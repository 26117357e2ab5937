"""The event-time step of a batch: from staged chunks to what is published, held, released.

Runs in the sequencer, after duplicates are dropped and before the batch's rows join their
shards, once per partition of the batch: each partition has its own state, as it has its own
shards, so the worker the consumer group gives a partition decides its windows alone, with no
lock shared with other workers. The step loads the partition's state as it was before the batch
(the *base* snapshot, ``sinks/state_store.py``), runs the event-time core (``pipelines/windows.py``)
over the partition's chunks in plan order, then closes the windows its watermark has passed
(k-anonymity and DP counts are therefore decided per partition and window), and writes:

* each chunk's published files (rows of non-windowed datasets, with their quality flags), and
  beside each its rows' leaf hashes (hashed from the rows as written, not read back);
* the rows it puts on hold, and their records, to the private held store;
* for each closed window, its released files (k-anonymous sessions, DP counts), the records
  k-anonymity withholds (``private/suppressed/``), its quality figures;
* quarantine files for records the stateful checks reject (``teleport``, ``window_closed``);
* the state after the batch, as a new snapshot.

Everything is a function of the base snapshot and the staged files, so a redo after a crash at
any step writes the same bytes; the base is journaled before the batch's rows join their shards
(``plan["state"][<partition>]``), so a redo after that point starts from the same state.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import aggregate, staged, windows
from pipelines.kafka_source import OffsetRange
from pipelines.protect import Protection, suppression_batch
from pipelines.quality_counts import sum_stats
from pipelines.release import release as release_window
from schemas.records import quarantine_batch
from sinks.key_index import natural_key
from sinks.layout import DataLayout
from sinks.parquet import read_parquet, write_parquet
from sinks.state_store import StateDamaged, StateStore, one_batch
from sinks.storage import Store
from streaming.errors import SettingsError
from streaming.leaf_files import PendingLeaves
from validators.sequence import SequenceState

ReadRaw = Callable[[OffsetRange], pa.RecordBatch]  # a chunk's records, as read from Kafka
# Key columns kept per partition for the key index (``Outcome.key_rows``): all of a small batch's,
# which then records its keys without reading its files back; a backlog's batch reads its files
# instead of holding ~30 bytes a row until then (measured: +12 MB peak at 221,567 records).
KEPT_KEY_ROWS = 16_384
_CHECKS = ("teleport", "counter", "flat_line")


@dataclass
class Outcome:
    """What the step decided for one batch, for the sequencer and the summary."""

    receipts: list[dict]  # per published file, in leaf order: range, files, quality, windows
    records: Counter = field(default_factory=Counter)  # published, quarantined, suppressed, held
    reasons: Counter = field(default_factory=Counter)  # codes of the stateful quarantine
    flags: Counter = field(default_factory=Counter)
    cells: tuple[int, int] = (0, 0)  # empty cells and cells published
    quarantine_entries: list[dict] = field(default_factory=list)
    private_files: list[str] = field(default_factory=list)  # suppressed records' files
    key_files: dict[str, list[str]] = field(default_factory=dict)  # keys this batch indexes
    # Those files' key columns as written (path -> rows): the key index takes them from here
    # rather than reading the files back.
    key_rows: dict[str, pa.Table] = field(default_factory=dict)
    closed: list[dict] = field(default_factory=list)  # figures of every window it closed
    state: dict[str, Any] = field(default_factory=dict)  # journaled: base, position, partitions
    held_total: int = 0
    held_until: str | None = None


def decide(
    layout: DataLayout,
    plan: dict,
    receipts: list[dict],
    read_raw: ReadRaw,
    protection: Protection,
    state_info: dict,
    store: Store | None = None,
    leaves: PendingLeaves | None = None,
) -> Outcome:
    """Run the event-time step of a batch over one partition's chunks (``state_info``: that
    partition's base and position; ``store``: where the state is shared, see StateStore).
    ``leaves``: where the published files' leaf files wait to be written with those of the
    batch's other partitions (the caller writes them); written here without it."""
    topic = _topic(plan, receipts)
    (partition,) = state_info["partitions"]
    state_store = StateStore(layout, topic, partition, store)
    pending = leaves if leaves is not None else PendingLeaves()
    read = {r["partition"]: r for r in plan.get("ranges", ())}
    step = _Step(layout, state_store, plan["batch_id"], read_raw, protection, pending, read)
    step.load(state_info.get("base"))
    for receipt in receipts:  # in plan order: each partition's chunks in stream order
        step.chunk(receipt)
    step.put_on_hold()
    flush = bool(plan.get("flush"))
    for window in windows.windows_to_close(
        step.state, state_info["partitions"], step.settings, flush=flush
    ):
        step.release(window)
    outcome = step.outcome(state_info)  # settles what stays pending: saved with the state
    step.save(state_info)
    if leaves is None:
        pending.write()
    return outcome


# -- the step ----------------------------------------------------------------------------------


class _Step:
    def __init__(
        self,
        layout: DataLayout,
        store: StateStore,
        batch_id: int,
        read_raw: ReadRaw,
        protection: Protection,
        leaves: PendingLeaves,
        read: dict[int, dict],
    ) -> None:
        self.layout, self.topic, self.batch_id = layout, store.topic, batch_id
        self.leaves = leaves
        self.read_raw = read_raw
        self.read = read  # partition -> the plan's offset range read in it
        self.protection = protection
        self.settings = protection.settings
        self.store = store
        self.state = windows.TopicState()
        self.doc: dict[str, Any] = {}
        self.receipts: list[dict] = []
        self.records: Counter = Counter()
        self.reasons: Counter = Counter()
        self.stats: dict[str, list[dict]] = {}
        self.figures: dict[str, list[dict]] = {}
        self.closed: list[dict] = []
        self.held: dict[str, list[pa.Table]] = {}
        self.key_files: dict[str, list[str]] = {}
        self.key_rows: dict[str, pa.Table] = {}
        self.key_rows_left = KEPT_KEY_ROWS
        self.ledger: pa.Table | None = None
        self.ledger_changed = False
        self.quarantine_entries: list[dict] = []
        self.private_files: list[str] = []

    # -- loading and saving ------------------------------------------------------------------

    def load(self, base: int | None) -> None:
        if base is None:
            self.doc = {"held_files": [], "pending": {}, "ledger": None}
            return
        doc, tables = self.store.read_snapshot(base)
        window = self.settings.window
        kept = (doc["settings"]["window_s"], doc["settings"]["allowed_lateness_s"])
        if kept != (window.window_s, window.allowed_lateness_s):
            raise SettingsError(
                f"the event-time state of {self.topic} was built with {kept[0]} s windows and "
                f"{kept[1]} s allowed lateness; this run asks for {window.window_s} s and "
                f"{window.allowed_lateness_s} s (a new data directory is needed to change them)"
            )
        self.doc = doc
        self.state.watermarks = {int(p): int(v) for p, v in doc["watermarks"].items()}
        self.state.closed_through = doc["closed_through"]
        self.state.windows = {int(w): t for w, t in doc["windows"].items()}
        for dataset in doc["sequences"]:
            names = [f"sequence.{dataset}.{check}" for check in _CHECKS]
            if missing := [name for name in names if name not in tables]:
                folder = self.store.snapshot_dir(base)
                raise StateDamaged(f"{folder} lacks {', '.join(missing)}")
            self.state.sequences[dataset] = SequenceState(*(tables[name] for name in names))

    def save(self, state_info: dict) -> None:
        if self.ledger_changed:
            path = self.store.ledger_file(self.batch_id)
            self.doc["ledger"] = self.store.write_table(path, self.ledger)
        tables = {
            f"sequence.{dataset}.{check}": getattr(sequence, check)
            for dataset, sequence in sorted(self.state.sequences.items())
            for check in _CHECKS
        }
        window = self.settings.window
        doc = {
            **self.doc,
            "topic": self.topic,
            "batch_id": self.batch_id,
            "base": state_info.get("base"),
            "position": state_info["position"],
            "watermarks": {str(p): v for p, v in sorted(self.state.watermarks.items())},
            "closed_through": self.state.closed_through,
            "windows": {str(w): t for w, t in sorted(self.state.windows.items())},
            "sequences": sorted(self.state.sequences),
            "settings": {
                "window_s": window.window_s,
                "allowed_lateness_s": window.allowed_lateness_s,
            },
        }
        self.store.write_snapshot(self.batch_id, doc, tables)

    # -- chunks ------------------------------------------------------------------------------

    def chunk(self, receipt: dict) -> None:
        """One chunk's staged rows through the core: published files, held rows, rejects."""
        chunk = OffsetRange(**receipt["range"])
        parts: dict[str, list[pa.Table]] = {}
        for dataset, file in receipt["files"].items():
            parts.setdefault(dataset, []).append(read_parquet(self.layout.root / file["path"]))
        for dataset, path in receipt.get("staged_rejects", {}).items():
            parts.setdefault(dataset, []).append(read_parquet(self.layout.root / path))
        rows = {d: pa.concat_tables(tables) for d, tables in parts.items()}
        decision = windows.advance(self.state, rows, self.settings)
        published = {}
        for dataset, table in sorted(decision.published.items()):
            path = self.layout.data_file(dataset, chunk.name, chunk.topic, chunk.partition)
            published[dataset] = self._write(dataset, table, path)
        self.receipts.append({"range": chunk.as_dict(), "files": published})
        for dataset, stats in decision.stats.items():
            self.stats.setdefault(dataset, []).append(stats)
        for dataset, table in decision.held.items():
            self.held.setdefault(dataset, []).append(table)
        self.records.update(decision.records)
        self.records["staged"] += sum(decision.records.values())
        if decision.quarantined.num_rows:
            self._quarantine(chunk, self.read_raw(chunk), decision.quarantined)

    def _write(self, dataset: str, table: pa.Table, path: Path, new_keys: bool = True) -> dict:
        """A published file and its leaf file; ``new_keys``: its natural keys are new to the
        index."""
        rows = one_batch(table)
        digest = write_parquet(rows, path)
        written = pa.Table.from_batches([rows])  # for the leaves and the keys, made once
        self.leaves.add(path, written)
        relative = self.layout.relative(path)
        if new_keys:
            self._new_keys(dataset, relative, written)
        return {"path": relative, "sha256": digest, "rows": table.num_rows}

    def _new_keys(self, dataset: str, relative: str, rows: pa.Table) -> None:
        """A file whose natural keys the batch adds to the index, and those keys while they fit
        in ``KEPT_KEY_ROWS`` (their columns alone, not the rest of the rows)."""
        self.key_files.setdefault(dataset, []).append(relative)
        if rows.num_rows <= self.key_rows_left:
            self.key_rows[relative] = rows.select(natural_key(dataset))
            self.key_rows_left -= rows.num_rows

    def _quarantine(self, chunk: OffsetRange, raw: pa.RecordBatch, rejects: pa.Table) -> None:
        offsets = rejects.column("source_offset").combine_chunks()
        positions = pc.index_in(offsets, value_set=raw.column("offset"))
        batch = quarantine_batch(
            raw.take(positions),
            rejects.column("reason_code").combine_chunks(),
            rejects.column("reason").combine_chunks(),
        )
        path = self.layout.quarantine_file(chunk.topic, chunk.name + ".event-time")
        write_parquet(batch, path)
        codes = Counter(batch.column("reason_code").to_pylist())
        self.reasons.update(codes)
        self.quarantine_entries.append(
            {**chunk.as_dict(), "path": self.layout.relative(path), "rows": batch.num_rows,
             "reasons": dict(sorted(codes.items()))}
        )  # fmt: skip

    # -- holding and releasing ---------------------------------------------------------------

    def put_on_hold(self) -> None:
        """Write the rows this batch holds (their records travel with them) to the held store."""
        if not self.held:
            return
        entry: dict[str, Any] = {"batch": self.batch_id, "rows": {}, "windows": []}
        found: set[int] = set()
        for dataset, tables in sorted(self.held.items()):
            table = pa.concat_tables(tables)
            path = self.store.held_file(self.batch_id, dataset)
            entry["rows"][dataset] = self.store.write_table(path, table)
            self._new_keys(dataset, entry["rows"][dataset], table)
            found |= set(pc.unique(table.column(staged.WINDOW)).to_pylist())
        entry["windows"] = sorted(found)
        self.doc["held_files"] = [*self.doc.get("held_files", []), entry]

    def release(self, window: int) -> None:
        """Close ``window``: publish what k-anonymity keeps, store what it withholds."""
        held = self._held_for(window)
        ledger = self._ledger()
        scope = f"{self.topic}/p{self.store.partition}"  # the DP noise's own draw
        release = release_window(
            self.state, window, held, self.settings, self.protection.key, self.topic, ledger, scope
        )
        if release.ledger is not ledger:
            self.ledger, self.ledger_changed = release.ledger, True
        name = f"w{_stamp(window)}"
        for dataset, table in sorted(release.published.items()):
            for partition in sorted(set(table.column("source_partition").to_pylist())):
                part = table.filter(pc.equal(table.column("source_partition"), partition))
                chunk = f"{self.topic}-p{partition:04d}-{name}"
                path = self.layout.data_file(dataset, chunk, self.topic, partition)
                # Released rows' keys were indexed when they were put on hold.
                entry = self._write(dataset, part, path, new_keys=dataset == aggregate.DATASET)
                self.receipts.append(
                    {"range": self._released(partition), "files": {dataset: entry}}
                )
        for dataset, stats in release.stats.items():
            self.stats.setdefault(dataset, []).append(stats)
        if release.suppressed:
            self._suppress(name, held, release.suppressed)
        self.records.update(
            published=release.records["published"], suppressed=release.records["suppressed"]
        )
        self.records["held"] -= release.records["published"] + release.records["suppressed"]
        end = window + self.settings.window.window_us
        for dataset, figures in release.figures.items():
            figure = {
                "topic": self.topic,
                "partition": self.store.partition,
                "window_start": iso(window),
                "window_end": iso(end),
                **figures,
            }
            self.figures.setdefault(dataset, []).append(figure)
            self.closed.append({"dataset": dataset, **figure})
        self._forget(window)

    def _released(self, partition: int) -> dict:
        """A released file's source range: the offsets this batch read in the partition (its
        release is this batch's doing). Not the span of its rows' own offsets: that would date
        the window's first and last sessions by the published rows around them."""
        read = self.read.get(partition, {"start": 0, "end": 0})  # read nothing: a closing flush
        return {
            "topic": self.topic,
            "partition": partition,
            "start": read["start"],
            "end": read["end"],
        }

    def _held_for(self, window: int) -> dict[str, pa.Table]:
        rows: dict[str, list[pa.Table]] = {}
        for entry in self.doc.get("held_files", []):
            if window in entry["windows"]:
                for dataset, path in entry["rows"].items():
                    table = windows.held_in(self.store.read_table(path), window)
                    rows.setdefault(dataset, []).append(table)
        return {d: pa.concat_tables(t) for d, t in rows.items()}

    def _forget(self, window: int) -> None:
        """The window's rows are released: held files keep only the windows still open."""
        kept = []
        for entry in self.doc.get("held_files", []):
            left = [w for w in entry["windows"] if w != window]
            if left:
                kept.append({**entry, "windows": left})
        self.doc["held_files"] = kept

    def _ledger(self) -> pa.Table:
        if self.ledger is None:
            path = self.doc.get("ledger")
            self.ledger = self.store.read_table(path) if path else aggregate.empty_ledger()
        return self.ledger

    def _suppress(
        self, name: str, held: dict[str, pa.Table], suppressed: list[tuple[int, int]]
    ) -> None:
        """The records k-anonymity withholds, whole (from their held rows), stored privately."""
        records = pa.concat_tables(
            [staged.records_of(rows) for d, rows in sorted(held.items()) if staged.is_windowed(d)]
        )
        keys = {(p, o) for p, o in suppressed}
        pairs = zip(
            records.column("partition").to_pylist(),
            records.column("offset").to_pylist(),
            strict=True,
        )
        withheld = records.filter(pa.array([pair in keys for pair in pairs], pa.bool_()))
        batch = suppression_batch(withheld, self.settings.privacy.k)
        path = self.layout.suppressed_file(
            self.topic, f"{self.topic}-p{self.store.partition:04d}-{name}"
        )
        write_parquet(batch, path)
        self.private_files.append(self.layout.relative(path))

    # -- the outcome -------------------------------------------------------------------------

    def outcome(self, state_info: dict) -> Outcome:
        """Per dataset, this batch's counts and closed windows go with its first published file;
        a dataset that publishes nothing now carries them, pending, to its next checkpoint."""
        pending = self.doc.setdefault("pending", {})
        first_file: dict[str, dict] = {}
        for receipt in self.receipts:
            for dataset in receipt["files"]:
                first_file.setdefault(dataset, receipt)
        flags, null_cells, cells = Counter(), 0, 0
        for dataset in sorted(set(self.stats) | set(self.figures) | set(pending)):
            carried = pending.pop(dataset, {"stats": [], "windows": []})
            stats = carried["stats"] + self.stats.get(dataset, [])
            figures = carried["windows"] + self.figures.get(dataset, [])
            for s in self.stats.get(dataset, []):
                flags.update(s["flags"])
                null_cells, cells = null_cells + s["null_cells"], cells + s["cells"]
            if dataset in first_file:
                first_file[dataset].setdefault("quality", {})[dataset] = sum_stats(stats)
                first_file[dataset].setdefault("windows", {})[dataset] = figures
            else:
                pending[dataset] = {"stats": [sum_stats(stats)], "windows": figures}
        held = self.state.held_windows()
        until = None
        if held:
            until = iso(self.settings.window.closes_at(max(held)))
        return Outcome(
            receipts=[r for r in self.receipts if r["files"]],
            records=self.records,
            reasons=self.reasons,
            flags=flags,
            cells=(null_cells, cells),
            quarantine_entries=self.quarantine_entries,
            private_files=self.private_files,
            key_files=self.key_files,
            key_rows=self.key_rows,
            closed=self.closed,
            state=state_info,
            held_total=self.state.held_records,
            held_until=until,
        )


def _topic(plan: dict, receipts: list[dict]) -> str:
    if receipts:
        return receipts[0]["range"]["topic"]
    return plan["topic"]


def iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    moment = dt.datetime.fromtimestamp(micros / 1e6, dt.timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _stamp(micros: int) -> str:
    return dt.datetime.fromtimestamp(micros / 1e6, dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
