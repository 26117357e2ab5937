"""A checkpoint's quality report: GE's validation of the new rows, its hash, the score.

Written under ``published/<dataset>/quality/`` — ``<tree size>.validation.json`` (what the
manifest's ``quality.report_sha256`` commits to) and ``docs/`` (GE's HTML Data Docs, for the
listing; not hashed, GE stamps them with the time of the run).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.model import TelemetrySchema
from sinks.layout import DataLayout
from validators.expectations import report_bytes, validate
from validators.score import dataset_counts, dataset_quality


def write_quality_report(
    layout: DataLayout,
    schema: TelemetrySchema,
    tree_size: int,
    new_files: list[str],
    chunk_stats: list[dict[str, Any]],
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """Validate the checkpoint's new rows with GE; return the manifest's ``quality`` section.

    ``previous`` is the previous checkpoint's ``quality`` section, whose cumulative counts this
    checkpoint's extend (so the dataset score covers every row ever published).
    """
    rows = pa.concat_tables([pq.read_table(layout.root / path) for path in new_files])
    quality_dir = layout.quality_dir(schema.dataset)
    report, ge_seconds = validate(schema, rows, quality_dir / "docs")
    path = quality_dir / f"{tree_size:012d}.validation.json"
    data = report_bytes(report)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    counts = dataset_counts(chunk_stats, (previous or {}).get("counts"))
    score, components = dataset_quality(counts)
    return {
        "report_path": path.relative_to(layout.dataset_dir(schema.dataset)).as_posix(),
        "report_sha256": hashlib.sha256(data).hexdigest(),
        "score": score,
        "components": components,
        "counts": counts,
        "expectations": {
            "evaluated": report["statistics"]["evaluated_expectations"],
            "successful": report["statistics"]["successful_expectations"],
            "success": report["success"],
        },
        "_ge_seconds": round(ge_seconds, 4),  # not in the manifest: varies between runs
    }


def data_docs_index(layout: DataLayout, dataset: str) -> Path | None:
    index = layout.quality_dir(dataset) / "docs" / "index.html"
    return index if index.exists() else None


def quality_files(dataset_dir: Path) -> list[Path]:
    return sorted((dataset_dir / "quality").glob("*.validation.json"))
