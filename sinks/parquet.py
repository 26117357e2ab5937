"""Landing standardized chunks: Parquet for published rows, a private store for rejects.

Files are named after their offset range and written byte-for-byte deterministically (fixed
writer options, rows in offset order), then renamed into place, so redoing a chunk after a crash
yields the same bytes and the same SHA-256.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from infra.tools import sha256_file
from pipelines.kafka_source import OffsetRange
from pipelines.standardize import Standardized
from sinks.layout import DataLayout

_WRITER_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 128 * 1024,
}


def write_parquet(batch: pa.RecordBatch, path: Path) -> str:
    """Write ``batch`` atomically to ``path``; return the file's SHA-256 (hex)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(pa.Table.from_batches([batch]), partial, **_WRITER_OPTIONS)
    digest = sha256_file(partial)
    os.replace(partial, path)
    return digest


@dataclass(frozen=True)
class ChunkWriter:
    """The pipeline's sink: lands one chunk and leaves a receipt the driver can collect."""

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
            if rows.num_rows:
                path = layout.data_file(dataset, chunk.name, chunk.topic, chunk.partition)
                digest = write_parquet(rows, path)
                receipt["files"][dataset] = {
                    "path": layout.relative(path),
                    "sha256": digest,
                    "rows": rows.num_rows,
                }
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


def _write_receipt(path: Path, receipt: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(receipt, sort_keys=True, indent=1) + "\n")
    os.replace(partial, path)


def read_receipt(layout: DataLayout, chunk: OffsetRange) -> dict:
    """The receipt a ``ChunkWriter`` left for ``chunk``; KeyError if it never finished."""
    path = layout.receipt_file(chunk.name)
    if not path.exists():
        raise KeyError(f"chunk {chunk.name} has no receipt: it was not landed")
    return json.loads(path.read_text())
