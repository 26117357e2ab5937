"""Landing standardized chunks: staged rows and rejects, privately, in Parquet.

The pipeline's sink writes each chunk's *staged* rows (checked and transformed row by row,
``pipelines/staged.py``) under ``private/staging/`` and its rejects under ``private/quarantine/``;
the driver's event-time step then writes the published files (``streaming/event_time.py``).
Files are named after their offset range and written byte-for-byte deterministically (fixed
writer options, rows in offset order), then renamed into place, so redoing a chunk after a crash
yields the same bytes and the same SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.kafka_source import OffsetRange
from pipelines.staged import QUARANTINE
from pipelines.standardize import Standardized
from sinks.layout import DataLayout

_WRITER_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 128 * 1024,
}


# Private files this worker alone reads back whole, never published: the event-time state's
# (``sinks/state_store.py``: snapshots, held rows, the ledger) and the staged rows a landing
# hands the event-time step. LZ4 without dictionaries or statistics: a snapshot's small tables in
# ~0.58 ms each against ~0.98 ms (a batch writes ~30 of them), for ~10 % more bytes; a chunk's
# staged radio rows (2,900 rows, 30 columns) in 1.2 ms against 3.6 ms and read back in 0.8
# against 1.4 ms, 23,400 rows in 5.8 against 13.9 ms, for ~50-70 % more bytes.
_PRIVATE_OPTIONS = {
    **_WRITER_OPTIONS,
    "compression": "lz4",
    "compression_level": None,
    "use_dictionary": False,
    "write_statistics": False,
}


def write_parquet(batch: pa.RecordBatch, path: Path) -> str:
    """Write ``batch`` atomically to ``path``; return the file's SHA-256 (hex)."""
    data = _encoded(batch, _WRITER_OPTIONS)
    _write_atomically(data, path)
    return hashlib.sha256(data).hexdigest()


def write_private_parquet(batch: pa.RecordBatch, path: Path, atomic: bool = True) -> str:
    """``write_parquet`` for a private file (staged rows, the event-time state): deterministic
    bytes too, in a cheaper encoding. ``atomic=False``: written in place, for a file in a
    folder that is itself renamed into place once complete (a state snapshot's tables: the
    partial file, its rename and the folder check cost ~0.3 ms a file, more than encoding it)."""
    data = _encoded(batch, _PRIVATE_OPTIONS)
    if atomic:
        _write_atomically(data, path)
    else:
        with open(path, "wb") as file:
            file.write(data)
    return hashlib.sha256(data).hexdigest()


def _encoded(batch: pa.RecordBatch, options: dict) -> pa.Buffer:
    """The file's bytes, encoded in memory: the same bytes as written to a path, ~0.4 ms a
    file sooner (a batch writes tens of small files), and hashed without reading them back."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_batches([batch]), sink, **options)
    return sink.getvalue()


def _write_atomically(data: pa.Buffer, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        file.write(data)
    os.replace(partial, path)


def read_parquet(path: Path) -> pa.Table:
    """The whole file at ``path``. Through ``ParquetFile``, not ``pq.read_table``, whose dataset
    machinery costs as much as the read itself for the small files a batch reads (a 60-row
    staged file: 0.9 against 1.6 ms; a ~1,000-record batch reads ~15 of them). On one thread:
    the event-time step reads while the run's landing children work (as JSON parses,
    ``schemas/adapters/ndjson.py``); one batch of 206,120 records 3.10 -> 2.78 s, `rda run
    --once` median 6.56 -> 6.44 s (alternated pairs, 2 cores)."""
    with pq.ParquetFile(path) as file:
        return file.read(use_threads=False)


@dataclass(frozen=True)
class ChunkWriter:
    """The pipeline's sink: lands one chunk and leaves a receipt the driver can collect.

    The receipt's ``files`` are the chunk's staged files, by dataset (private: the event-time
    step reads them and writes what is published)."""

    root: str

    def __call__(self, chunk: OffsetRange, result: Standardized) -> dict:
        layout = DataLayout(Path(self.root))
        reasons = Counter(result.quarantined.column("reason_code").to_pylist())
        receipt: dict = {
            "range": chunk.as_dict(),
            "read": result.read,
            "published": result.published_records,
            "quarantined": result.quarantined.num_rows,
            "reasons": dict(sorted(reasons.items())),
            "files": {},
            "quarantine_file": None,
            "suppressed": 0,
            "suppressed_file": None,
            "quality": result.quality,
        }
        for dataset, rows in sorted(result.published.items()):
            passed, rejected = _split_staged(rows)
            if passed.num_rows:
                path = layout.staging_file(dataset, chunk.name)
                digest = write_private_parquet(passed, path)
                receipt["files"][dataset] = {
                    "path": layout.relative(path),
                    "sha256": digest,
                    "rows": passed.num_rows,
                }
            if rejected.num_rows:  # only for the quality figures: never deduplicated, published
                path = layout.staging_file(dataset, chunk.name + ".rejected")
                write_private_parquet(rejected, path)
                receipt.setdefault("staged_rejects", {})[dataset] = layout.relative(path)
        if result.quarantined.num_rows:
            path = layout.quarantine_file(chunk.topic, chunk.name)
            write_parquet(result.quarantined, path)
            receipt["quarantine_file"] = layout.relative(path)
        if result.suppressed is not None and result.suppressed.num_rows:
            path = layout.suppressed_file(chunk.topic, chunk.name)
            write_parquet(result.suppressed, path)
            receipt["suppressed"] = result.suppressed.num_rows
            receipt["suppressed_file"] = layout.relative(path)
        _write_receipt(layout.receipt_file(chunk.name), receipt)
        return receipt


def _split_staged(rows: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Staged rows of records that passed the stage, and those of records it quarantined."""
    if QUARANTINE not in rows.schema.names:
        return rows, rows.slice(0, 0)
    rejected = pc.is_valid(rows.column(QUARANTINE))
    return rows.filter(pc.invert(rejected)), rows.filter(rejected)


def _write_receipt(path: Path, receipt: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(receipt, sort_keys=True, indent=1) + "\n")
    os.replace(partial, path)


def discard_staged(layout: DataLayout, chunk: OffsetRange) -> None:
    """Remove a chunk's staged files and its receipt, once its batch is done.

    The event-time step has decided every staged row by then (published, quarantined,
    suppressed, or held in the partition's state, which keeps its own copy), and a done batch is
    never redone: kept, these private copies grew the work directory by the size of the data
    itself for as long as a stream ran."""
    discard_landed(layout, layout.receipt_file(chunk.name))


def discard_landed(layout: DataLayout, receipt_path: Path) -> None:
    """Remove the staged files a receipt names, then the receipt (it names them)."""
    try:
        receipt = json.loads(receipt_path.read_text())
    except FileNotFoundError:
        return  # discarded already (a crash between its files and its receipt, then a redo)
    staged = [f["path"] for f in receipt["files"].values()]
    staged += receipt.get("staged_rejects", {}).values()
    staging = (layout.private / "staging").resolve()
    paths = [(layout.root / relative).resolve() for relative in staged]
    outside = [str(p) for p in paths if not p.is_relative_to(staging)]
    if outside:  # a forged or damaged receipt: nothing of it is removed
        raise ValueError(f"{receipt_path.name} names files outside {staging}: {outside[:3]}")
    for path in paths:
        path.unlink(missing_ok=True)
    receipt_path.unlink()


def landed_receipts(layout: DataLayout) -> dict[str, Path]:
    """The receipts in the work directory, by chunk name."""
    return {path.stem: path for path in (layout.private / "receipts").glob("*.json")}


def read_receipt(layout: DataLayout, chunk: OffsetRange) -> dict:
    """The receipt a ``ChunkWriter`` left for ``chunk``; KeyError if it never finished."""
    path = layout.receipt_file(chunk.name)
    if not path.exists():
        raise KeyError(f"chunk {chunk.name} has no receipt: it was not landed")
    return json.loads(path.read_text())
