"""The private, crash-safe store of the event-time state: snapshots, held rows, the DP ledger.

Under ``private/state/<topic>/``:

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
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sinks.layout import DataLayout
from sinks.parquet import write_parquet

FORMAT = 1


class StateStore:
    """One topic's event-time state under a data directory."""

    def __init__(self, layout: DataLayout, topic: str) -> None:
        self.layout = layout
        self.topic = topic
        self.root = layout.state_dir(topic)

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
        for name, table in sorted(tables.items()):
            write_parquet(_one_batch(table), partial / f"{name}.parquet")
        (partial / "state.json").write_text(
            json.dumps({"format": FORMAT, **doc}, sort_keys=True, indent=1) + "\n"
        )
        shutil.rmtree(target, ignore_errors=True)  # a redo: the same content again
        os.replace(partial, target)

    def read_snapshot(self, batch_id: int) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        folder = self.snapshot_dir(batch_id)
        doc = json.loads((folder / "state.json").read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{folder}: unknown state format {doc.get('format')!r}")
        tables = {p.stem: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}
        return doc, tables

    def has_snapshot(self, batch_id: int) -> bool:
        return (self.snapshot_dir(batch_id) / "state.json").exists()

    # -- held rows and the ledger ----------------------------------------------------------

    def held_file(self, batch_id: int, name: str) -> Path:
        return self.root / "held" / f"b{batch_id:012d}.{name}.parquet"

    def write_table(self, path: Path, table: pa.Table) -> str:
        """Write a held or ledger file; return its path relative to the data directory."""
        write_parquet(_one_batch(table), path)
        return self.layout.relative(path)

    def read_table(self, relative: str) -> pa.Table:
        return pq.read_table(self.layout.root / relative)

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
                doc = json.loads((folder / "state.json").read_text())
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


def topics_with_state(layout: DataLayout) -> list[str]:
    root = layout.private / "state"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def _batch_of(name: str) -> int:
    return int(name[1:13]) if name.startswith("b") and name[1:13].isdigit() else -1


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    batches = table.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
