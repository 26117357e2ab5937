"""A checkpoint's quality report: GE's validation of the new rows, its hash, the score.

Written under ``published/<dataset>/quality/`` — ``<tree size>.validation.json`` (what the
manifest's ``quality.report_sha256`` commits to) and ``docs/`` (GE's HTML Data Docs, for the
listing; not hashed, GE stamps them with the time of the run).

GE is the largest fixed cost of a batch (about a second per dataset, more on a busy machine).
The published files are written by the event-time step, while the batch is sequenced, so the
sequencer validates them there, in one run that also builds the Data Docs when they are due
(``write_report``); a ``Validation`` made beforehand is used only if it covers exactly the
files published. Data Docs re-render every validation the process has kept, so they are
rebuilt for a dataset at most every ``DOCS_EVERY_S`` seconds (and at its first checkpoint).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.model import TelemetrySchema
from sinks.layout import DataLayout
from validators.expectations import report_bytes, validate
from validators.score import dataset_counts, dataset_quality

DOCS_EVERY_S = 300.0
_docs_built_at: dict[tuple[str, str], float] = {}  # (data dir, dataset) -> monotonic time


@dataclass(frozen=True)
class Validation:
    """GE's report on a set of files, valid only for exactly those file contents."""

    files: tuple[tuple[str, str], ...]  # (path, sha256), in leaf order
    report: dict[str, Any]
    seconds: float
    with_docs: bool = False  # the same run rebuilt the Data Docs


def validate_new_rows(
    layout: DataLayout,
    schema: TelemetrySchema,
    files: list[dict[str, Any]],
    docs_dir: Path | None = None,
) -> Validation:
    """Run the dataset's GE suite on the rows of ``files`` (receipt entries: path, sha256).

    With ``docs_dir``, the same run also rebuilds the Data Docs there.
    """
    rows = pa.concat_tables([pq.read_table(layout.root / f["path"]) for f in files])
    report, seconds = validate(schema, rows, docs_dir)
    return Validation(_identity(files), report, seconds, with_docs=docs_dir is not None)


@dataclass(frozen=True)
class QualityReport:
    """A GE report written for a set of new rows: where (relative to the dataset folder), its
    hash, and what the manifest's ``quality`` section says of its expectations."""

    path: str
    sha256: str
    expectations: dict[str, Any]
    ge_seconds: float


def write_report(
    layout: DataLayout,
    schema: TelemetrySchema,
    name: str,
    new_files: list[dict[str, Any]],
    validation: Validation | None = None,
) -> QualityReport:
    """Write GE's report on ``new_files`` as ``quality/<name>.validation.json``.

    ``validation``: their report if it was made beforehand — used only if the files are still
    exactly those it validated.
    """
    quality_dir = layout.quality_dir(schema.dataset)
    docs_dir = docs_dir_if_due(layout, schema)
    if validation is None or validation.files != _identity(new_files):
        validation = validate_new_rows(layout, schema, new_files, docs_dir)
    elif docs_dir is not None and not validation.with_docs:  # docs need a run with their action
        validate_new_rows(layout, schema, new_files, docs_dir)
    if docs_dir is not None:
        _docs_built_at[(str(layout.root.resolve()), schema.dataset)] = time.monotonic()
    report = validation.report
    path = quality_dir / f"{name}.validation.json"
    data = report_bytes(report)
    partial = path.with_name(path.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data)
    os.replace(partial, path)
    return QualityReport(
        path.relative_to(layout.dataset_dir(schema.dataset)).as_posix(),
        hashlib.sha256(data).hexdigest(),
        {
            "evaluated": report["statistics"]["evaluated_expectations"],
            "successful": report["statistics"]["successful_expectations"],
            "success": report["success"],
        },
        round(validation.seconds, 4),
    )


def quality_section(
    report: QualityReport, counts: dict[str, int], windows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A manifest's ``quality``: the report's path and hash, the score of ``counts``, and the
    figures of the event-time windows closed since the previous checkpoint (``windows``)."""
    score, components = dataset_quality(counts)
    return {
        "report_path": report.path,
        "report_sha256": report.sha256,
        "score": score,
        "components": components,
        "counts": counts,
        "expectations": report.expectations,
        **({"windows": windows} if windows else {}),
    }


def write_quality_report(
    layout: DataLayout,
    schema: TelemetrySchema,
    tree_size: int,
    new_files: list[dict[str, Any]],
    chunk_stats: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    validation: Validation | None = None,
    windows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write a checkpoint's GE report; return the manifest's ``quality`` section (version 1).

    ``previous`` is the previous checkpoint's ``quality`` section, whose cumulative counts this
    checkpoint's extend (so the dataset score covers every row ever published). ``windows``:
    the figures of the event-time windows closed since then (``quality.windows``).
    """
    report = write_report(layout, schema, f"{tree_size:012d}", new_files, validation)
    counts = dataset_counts(chunk_stats, (previous or {}).get("counts"))
    return {**quality_section(report, counts, windows), "_ge_seconds": report.ge_seconds}


def docs_dir_if_due(layout: DataLayout, schema: TelemetrySchema) -> Path | None:
    """Where to rebuild the dataset's Data Docs now, or None if they were rebuilt recently."""
    built = _docs_built_at.get((str(layout.root.resolve()), schema.dataset))
    if built is None or time.monotonic() - built >= DOCS_EVERY_S:
        return layout.quality_dir(schema.dataset) / "docs"
    return None


def _identity(files: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((f["path"], f["sha256"]) for f in files)


def data_docs_index(layout: DataLayout, dataset: str) -> Path | None:
    index = layout.quality_dir(dataset) / "docs" / "index.html"
    return index if index.exists() else None


def quality_files(dataset_dir: Path) -> list[Path]:
    return sorted((dataset_dir / "quality").glob("*.validation.json"))
