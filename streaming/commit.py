"""Appending a batch to the dataset logs: files → leaves → log → signed manifest → anchor.

The batch's place in each log (``plan["log_starts"]``) was fixed before the first append, so
the step is a function of the plan and the landed files: a redo after a crash writes the same
leaves at the same positions, the same manifest bytes, and finds its anchor already on chain.
Callers hold the data directory's writer lock (``streaming/store.py``).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipelines.protect import Protection
from proofs.leaves import leaf_hashes_for_batch
from proofs.log import DatasetLog
from proofs.manifest import build_manifest, load_manifest, write_manifest
from proofs.signing import publisher_key
from schemas.model import TelemetrySchema
from schemas.published import published_schema_for_dataset
from schemas.registry import all_datasets
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.quality_report import Validation, write_quality_report
from streaming import faults
from streaming.batch import Anchorer, Progress
from streaming.store import RunStore

PIPELINE_VERSION = "0.1.0"


def log_starts(layout: DataLayout) -> dict[str, int]:
    """Where every dataset's log stands: any registered format may turn up in a batch."""
    return {d: DatasetLog(layout.dataset_dir(d) / "log").size for d in all_datasets()}


def commit_and_anchor(
    store: RunStore,
    plan: dict,
    receipts: list[dict],
    anchor: Anchorer,
    progress: Progress,
    protection: Protection | None = None,
    validations: dict[str, Validation] | None = None,
) -> list[dict]:
    """Append each dataset's new files to its log, write the checkpoints, anchor them together.

    ``validations``: GE reports made before the lock was taken, by dataset (used if still valid).
    """
    layout, catalog = store.layout, store.catalog
    protection = protection or Protection(str(layout.private))
    checkpoints = []
    for dataset, start in plan["log_starts"].items():
        files = [(r["range"], r["files"][dataset]) for r in receipts if dataset in r["files"]]
        stats = [r["quality"][dataset] for r in receipts if dataset in r.get("quality", {})]
        closed = [w for r in receipts for w in r.get("windows", {}).get(dataset, [])]
        validation = (validations or {}).get(dataset)
        checkpoint = _commit_dataset(
            store, plan, dataset, start, files, (stats, protection, validation, closed)
        )
        if checkpoint is not None:  # None: nothing published for this dataset
            checkpoints.append(checkpoint)
    if checkpoints:
        progress(f"batch {plan['batch_id']}: anchoring {len(checkpoints)} checkpoints in one tx")
        for checkpoint, anchored in zip(checkpoints, anchor(checkpoints), strict=True):
            checkpoint.update(anchored)
            catalog.record_checkpoint(plan["batch_id"], checkpoint)
    return checkpoints


def _commit_dataset(
    store: RunStore,
    plan: dict,
    dataset: str,
    start: int,
    landed: list[tuple[dict, dict]],
    quality_inputs: tuple[list[dict], Protection, Validation | None, list[dict]],
) -> dict | None:
    """Append the batch's rows to the dataset's log and write its checkpoint manifest."""
    layout, catalog = store.layout, store.catalog
    appended = _append_rows(layout, catalog, plan, dataset, start, landed)
    if appended is None:
        return None
    schema, size, root = appended
    previous = [c for c in catalog.checkpoints(dataset) if c["tree_size"] < size]
    before = load_manifest(layout.root / previous[-1]["manifest_path"])[0] if previous else {}
    stats, protection, validation, closed = quality_inputs
    new_files = [file for _, file in landed]
    # With the event-time windows closed since the previous checkpoint, their final figures.
    quality = write_quality_report(
        layout, schema, size, new_files, stats, before.get("quality"), validation, closed
    )
    ge_seconds = quality.pop("_ge_seconds")
    signer = publisher_key(layout.root)
    dataset_dir = layout.dataset_dir(dataset)
    manifest = build_manifest(
        dataset=dataset,
        tree_size=size,
        root=root,
        schema=schema.describe(),
        fingerprint=schema.fingerprint(),
        files=[_manifest_file(layout, dataset_dir, f) for f in catalog.dataset_files(dataset)],
        batch=_batch_section(plan),
        previous=_previous(previous[-1]) if previous else None,
        pipeline_version=PIPELINE_VERSION,
        publisher=signer.describe(),
        quality=quality,
        privacy=protection.manifest_section(schema, stats, before.get("privacy")),
    )
    path, digest = write_manifest(dataset_dir, manifest, signer)
    store.journal.set_state(plan["batch_id"], "committed")
    faults.journaled("committed")
    return {
        "dataset": dataset,
        "tree_size": size,
        "root": root.hex(),
        "manifest_path": layout.relative(path),
        "manifest_sha256": digest.hex(),
        "previous_tree_size": previous[-1]["tree_size"] if previous else 0,
        "quality_score": quality["score"],
        "ge_seconds": ge_seconds,
    }


def _append_rows(
    layout: DataLayout,
    catalog: Catalog,
    plan: dict,
    dataset: str,
    start: int,
    landed: list[tuple[dict, dict]],
) -> tuple[TelemetrySchema, int, bytes] | None:
    """Hash the new files' rows into the log at ``start`` and register them; None if empty."""
    files, hashes = [], []
    for source, file in landed:  # in the plan's chunk order: the leaf order
        leaves = leaf_hashes_for_batch(pq.read_table(layout.root / file["path"]))
        files.append({**file, "dataset": dataset, "leaf_start": start + len(hashes), **source})
        hashes.extend(leaves)
    if not hashes:
        return None
    schema = published_schema_for_dataset(dataset)
    catalog.register_dataset(dataset, schema.describe(), schema.fingerprint())
    catalog.register_files(plan["batch_id"], files)
    catalog.refresh_views()
    size, root = DatasetLog(layout.dataset_dir(dataset) / "log").append_at(start, hashes)
    return schema, size, root


def _batch_section(plan: dict) -> dict:
    return {
        "id": plan["batch_id"],
        "planned_at": plan["planned_at"],
        "ranges": plan.get("ranges", []),
        "kind": plan.get("kind", "stream"),
    }


def _manifest_file(layout: DataLayout, dataset_dir: Path, entry: dict) -> dict:
    """A file as the manifest lists it: path relative to the dataset folder, and its source."""
    path = (layout.root / entry["path"]).relative_to(dataset_dir).as_posix()
    source = {k: entry[k] for k in ("topic", "partition", "start", "end")}
    return {
        "path": path,
        "sha256": entry["sha256"],
        "bytes": (layout.root / entry["path"]).stat().st_size,
        "rows": entry["rows"],
        "leaf_start": entry["leaf_start"],
        "source": source,
    }


def _previous(checkpoint: dict) -> dict:
    return {
        "tree_size": checkpoint["tree_size"],
        "root": checkpoint["root"],
        "manifest_sha256": checkpoint["manifest_sha256"],
    }
