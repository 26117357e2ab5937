"""The private, crash-safe store of the event-time state: snapshots, held rows, the DP ledger.

One state per partition of a topic (the source of the shards it publishes to: a worker holds
the state of the partitions the group gives it, and nothing else), under
``private/state/<topic>/p<partition>/``:

```
snapshots/b<batch>/state.json            watermarks, closed point, open windows and their
                                         tallies, the live held files, pending figures
snapshots/b<batch>/<name>.parquet        per-node sequence state (one table per dataset and check)
held/b<batch>.<dataset>.parquet          rows a batch put on hold: staged columns with their
                                         records (raw bytes: private), ``_window``
ledger/b<batch>.parquet                  the DP budget ledger as of that batch
```

Nothing is ever changed in place. A batch writes the state *after* it as a new snapshot, named
by its id, and its own held and ledger files; the journal records which snapshot a batch started
from (its *base*), so redoing a batch after a crash — at any step — reloads the same base and
writes the same bytes. Files are written whole under a temporary name and renamed into place.
Snapshots no batch can need any more are removed (``collect``).

The state is written in the worker's work directory and copied, whole files, to the data
directory's store (``sinks/storage.py``) before the batch that wrote it is journaled, so the
worker the group gives the partition next — on this machine or another — reads it there.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa

from sinks.layout import DataLayout
from sinks.parquet import read_parquet, write_private_parquet
from sinks.storage import Store

FORMAT = 1
# The snapshot this process wrote last, per partition's state folder: (batch, state.json's text,
# tables). The partition's next batch starts from it, and reading it back from its Parquet
# files cost ~15 ms per partition and batch. Only an exact match is used (same folder, same
# batch, still on disk); anything else is read from the files.
_LAST_WRITTEN: dict[Path, tuple[int, str, dict[str, pa.Table]]] = {}


class StateDamaged(RuntimeError):
    """A snapshot of the event-time state that cannot be read: the windows it holds are
    unknown, so the run stops (its batch is not redone from a made-up state)."""


def _state_document(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()  # absent: FileNotFoundError, as a snapshot never written
    try:
        doc = json.loads(raw)
    except ValueError as error:
        raise StateDamaged(f"{path} is damaged ({error})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise StateDamaged(f"{path}: unknown state format {found!r}")
    return doc


class StateStore:
    """One partition's event-time state in a work directory, shared through ``store`` (None:
    the work directory is the data directory)."""

    def __init__(
        self, layout: DataLayout, topic: str, partition: int, store: Store | None = None
    ) -> None:
        self.layout = layout
        self.topic, self.partition = topic, partition
        self.root = layout.state_dir(topic, partition)
        self.store = store if store is not None and store.local != layout.root.absolute() else None
        self._read: tuple[int, dict[str, pa.Table]] | None = None  # the snapshot read last

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot_dir(self, batch_id: int) -> Path:
        return self.root / "snapshots" / f"b{batch_id:012d}"

    def write_snapshot(
        self, batch_id: int, doc: dict[str, Any], tables: dict[str, pa.Table]
    ) -> None:
        """The state after ``batch_id``, whole: a directory renamed into place."""
        target = self.snapshot_dir(batch_id)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        written = {}
        for name, table in sorted(tables.items()):
            if self._link_unchanged(name, table, partial / f"{name}.parquet"):
                written[name] = table
                continue
            batch = one_batch(table)
            write_private_parquet(batch, partial / f"{name}.parquet", atomic=False)
            written[name] = pa.Table.from_batches([batch])
        text = json.dumps({"format": FORMAT, **doc}, sort_keys=True, indent=1) + "\n"
        (partial / "state.json").write_text(text)
        _LAST_WRITTEN.pop(self.root, None)
        shutil.rmtree(target, ignore_errors=True)  # a redo: the same content again
        os.replace(partial, target)
        _LAST_WRITTEN[self.root] = (batch_id, text, written)
        if self.store is not None:  # state.json last: a snapshot is there once it is
            names = [*sorted(f"{n}.parquet" for n in tables), "state.json"]
            for name in names:
                self.store.put_file(target / name, self.layout.relative(target / name))

    def _link_unchanged(self, name: str, table: pa.Table, target: Path) -> bool:
        """A table the batch left exactly as it read it (the same object) is the same file:
        hard-linked from the snapshot it was read from, not encoded and written again (about
        half of a partition's tables: checks a dataset has no columns for keep their state)."""
        if self._read is None or self._read[1].get(name) is not table:
            return False
        try:
            os.link(self.snapshot_dir(self._read[0]) / f"{name}.parquet", target)
        except OSError:  # gone meanwhile, or a file system without hard links: written anew
            return False
        return True

    def read_snapshot(self, batch_id: int) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        folder = self.snapshot_dir(batch_id)
        last = _LAST_WRITTEN.get(self.root)
        if last is not None and last[0] == batch_id and (folder / "state.json").exists():
            doc, tables = json.loads(last[1]), dict(last[2])
        else:
            if self.store is not None:  # also completes a copy cut short (a takeover killed)
                self.store.mirror(self.layout.relative(folder), self.layout.root)
            doc = _state_document(folder / "state.json")
            tables = {p.stem: read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
        self._read = (batch_id, dict(tables))
        return doc, tables

    def has_snapshot(self, batch_id: int) -> bool:
        state = self.snapshot_dir(batch_id) / "state.json"
        if state.exists():
            return True
        return self.store is not None and self.store.exists(self.layout.relative(state))

    # -- held rows and the ledger ----------------------------------------------------------

    def held_file(self, batch_id: int, name: str) -> Path:
        return self.root / "held" / f"b{batch_id:012d}.{name}.parquet"

    def write_table(self, path: Path, table: pa.Table) -> str:
        """Write a held or ledger file; return its path relative to the data directory."""
        write_private_parquet(one_batch(table), path)
        relative = self.layout.relative(path)
        if self.store is not None:
            self.store.put_file(path, relative)
        return relative

    def read_table(self, relative: str) -> pa.Table:
        local = self.layout.root / relative
        if not local.exists() and self.store is not None:
            self.store.get_file(relative, local)
        return read_parquet(local)

    def ledger_file(self, batch_id: int) -> Path:
        return self.root / "ledger" / f"b{batch_id:012d}.parquet"

    # -- clean-up --------------------------------------------------------------------------

    def collect(self, keep: set[int]) -> None:
        """Remove snapshots not in ``keep``, and held and ledger files none of those refers to."""
        snapshots = self.root / "snapshots"
        if not snapshots.exists():
            return
        referred: set[str] = set()
        for folder in sorted(snapshots.iterdir()):
            batch = _batch_of(folder.name)
            if batch in keep and folder.suffix != ".partial":
                doc = _state_document(folder / "state.json")
                for held in doc.get("held_files", []):  # {"rows": {dataset: path}, ...}
                    referred.update(held["rows"].values())
                if doc.get("ledger"):
                    referred.add(doc["ledger"])
        for folder in sorted(snapshots.iterdir()):
            if _batch_of(folder.name) not in keep:
                shutil.rmtree(folder, ignore_errors=True)
        newest_kept = max(keep, default=-1)
        for kind in ("held", "ledger"):
            for path in sorted((self.root / kind).glob("*.parquet")):
                # Files of a batch after every kept snapshot belong to one being sequenced.
                if (
                    self.layout.relative(path) not in referred
                    and _batch_of(path.name) <= newest_kept
                ):
                    path.unlink(missing_ok=True)


def partitions_with_state(layout: DataLayout, store: Store | None = None) -> dict[str, list[int]]:
    """Topic -> the partitions with an event-time state (in ``store`` if given, else locally)."""
    if store is not None:
        found: set[tuple[str, int]] = set()
        for path in store.list("private/state", "state.json"):
            parts = path.split("/")  # private/state/<topic>/p<n>/snapshots/b<id>/state.json
            if len(parts) == 7 and parts[3][1:].isdigit():
                found.add((parts[2], int(parts[3][1:])))
    else:
        root = layout.private / "state"
        found = {
            (t.name, int(p.name[1:]))
            for t in (root.iterdir() if root.exists() else [])
            if t.is_dir()
            for p in t.iterdir()
            if p.is_dir() and p.name[1:].isdigit()
        }
    topics: dict[str, list[int]] = {}
    for topic, partition in sorted(found):
        topics.setdefault(topic, []).append(partition)
    return topics


def _batch_of(name: str) -> int:
    """The batch id in ``b<id>`` or ``b<id>.<rest>`` (ids are longer than 12 digits now)."""
    digits = name[1:].split(".", 1)[0]
    return int(digits) if name.startswith("b") and digits.isdigit() else -1


def one_batch(table: pa.Table) -> pa.RecordBatch:
    """The table as one record batch (an empty one keeps its schema)."""
    table = table.combine_chunks()
    batches = table.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
