"""A checkpoint's quality: the score of its rows, and Great Expectations' validation of them.

The score, its components and counts (from the vectorized checks of each chunk) go into the
checkpoint's manifest at once (``checkpoint_quality``). GE's validation of the rows the
checkpoint added runs later, in the quality worker (``streaming/quality_worker.py``), and is
written under ``published/<dataset>/quality/``: ``<tree size>.validation.json`` (the
deterministic report the checkpoint's signed attestation hashes) and ``docs/`` (GE's HTML Data
Docs, for the listing; not hashed, GE stamps them with the time of the run). Data Docs
re-render every validation the process has kept, so they are rebuilt for a dataset at most
every ``DOCS_EVERY_S`` seconds (and at its first report).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.model import TelemetrySchema
from sinks.layout import DataLayout
from validators.expectations import validate
from validators.score import dataset_counts, dataset_quality

DOCS_EVERY_S = 300.0
_docs_built_at: dict[tuple[str, str], float] = {}  # (data dir, dataset) -> monotonic time


@dataclass(frozen=True)
class Validation:
    """GE's report on a set of files."""

    report: dict[str, Any]
    seconds: float


def validate_new_rows(
    layout: DataLayout,
    schema: TelemetrySchema,
    files: list[dict[str, Any]],
    docs_dir: Path | None = None,
) -> Validation:
    """Run the dataset's GE suite on the rows of ``files`` (path from the data root, sha256).

    With ``docs_dir``, the same run also rebuilds the Data Docs there. A file whose bytes are
    not the ones named (changed since the checkpoint was anchored) is refused: the attestation
    names those hashes, so it must be their rows GE judged.
    """
    rows = pa.concat_tables([_read_committed(layout, f["path"], f["sha256"]) for f in files])
    report, seconds = validate(schema, rows, docs_dir)
    return Validation(report, seconds)


class ChangedSinceAnchored(ValueError):
    """A checkpoint's file no longer has the SHA-256 its manifest committed to."""


def check_committed(layout: DataLayout, files: list[dict[str, Any]]) -> None:
    """Refuse files whose bytes are no longer the ones named (``ChangedSinceAnchored``): a
    report validated before their checkpoint is signed only for the bytes it judged."""
    for f in files:
        _committed_bytes(layout, f["path"], f["sha256"])


def _read_committed(layout: DataLayout, path: str, sha256: str) -> pa.Table:
    data = _committed_bytes(layout, path, sha256)
    return pq.read_table(pa.BufferReader(data), use_threads=False)


def _committed_bytes(layout: DataLayout, path: str, sha256: str) -> bytes:
    data = (layout.root / path).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ChangedSinceAnchored(f"{path}: SHA-256 is not the anchored checkpoint's")
    return data


def checkpoint_quality(
    chunk_stats: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    windows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The manifest's ``quality`` figures: score, components and cumulative counts.

    ``previous`` is the previous checkpoint's ``quality`` section, whose cumulative counts this
    checkpoint's extend (so the dataset score covers every row ever published). ``windows``:
    the figures of the event-time windows closed since then (``quality.windows``).
    """
    counts = dataset_counts(chunk_stats, (previous or {}).get("counts"))
    score, components = dataset_quality(counts)
    return {
        "score": score,
        "components": components,
        "counts": counts,
        **({"windows": windows} if windows else {}),
    }


def docs_due(layout: DataLayout, dataset: str) -> bool:
    """Whether the dataset's Data Docs should be rebuilt with the next validation."""
    built = _docs_built_at.get((str(layout.root.resolve()), dataset))
    return built is None or time.monotonic() - built >= DOCS_EVERY_S


def mark_docs_built(layout: DataLayout, schema: TelemetrySchema) -> None:
    _docs_built_at[(str(layout.root.resolve()), schema.dataset)] = time.monotonic()
