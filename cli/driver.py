"""The micro-batch driver: plan → land → commit → anchor → commit Kafka offsets.

The plan (offset ranges, and where each dataset's log stands) is journaled in the catalog before
any work, and Kafka offsets are committed only after the checkpoint is anchored. A batch found
unfinished at start is redone from its journaled plan: file names, bytes, leaves and roots are
functions of the plan alone, so the redo produces the same checkpoint and the anchor is a no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines import graph
from pipelines.kafka_source import KafkaSource, OffsetRange
from pipelines.protect import Protection
from proofs.leaves import leaf_hashes_for_batch
from proofs.log import DatasetLog
from proofs.manifest import build_manifest, load_manifest, write_manifest
from proofs.signing import publisher_key
from schemas.published import published_schema_for_dataset
from schemas.registry import all_datasets
from sinks.catalog import Catalog
from sinks.dedup import drop_records, find_duplicates, quarantine_duplicates
from sinks.layout import DataLayout
from sinks.parquet import ChunkWriter, read_receipt
from sinks.quality_report import write_quality_report
from validators.score import components_from_counts, score

PIPELINE_VERSION = "0.1.0"
# Anchors a batch's checkpoints (dataset, tree_size, root, manifest_sha256) in one transaction.
Anchorer = Callable[[list[dict]], list[dict]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig:
    bootstrap: str
    topic: str
    group: str
    data_dir: Path
    wire_format: str | None = "rda.node.v1"  # for records without a format header
    max_chunk_records: int = 50_000
    max_batch_records: int = 2_000_000
    runner: str = "fnapi"


@dataclass
class BatchSummary:
    batch_id: int
    ranges: list[dict]
    read: int = 0
    published: int = 0
    quarantined: int = 0
    suppressed: int = 0  # withheld for k-anonymity, kept privately
    reasons: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    quality_score: float | None = None
    checkpoints: list[dict] = field(default_factory=list)
    resumed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "ranges": self.ranges,
            "records_read": self.read,
            "records_published": self.published,
            "records_quarantined": self.quarantined,
            "records_suppressed": self.suppressed,
            "quarantine_reasons": self.reasons,
            "quality_flags": self.flags,
            "quality_score": self.quality_score,
            "checkpoints": self.checkpoints,
            "resumed": self.resumed,
        }


def run_batch(
    config: RunConfig, source: KafkaSource, anchor: Anchorer, progress: Progress = lambda _: None
) -> BatchSummary | None:
    """Process one micro-batch end to end; None when there is nothing new to read."""
    layout = DataLayout(config.data_dir)
    protection = Protection(str(layout.private))
    with Catalog(layout) as catalog:
        plan, resumed = _plan(config, source, catalog)
        if plan is None:
            return None
        summary = BatchSummary(plan["batch_id"], plan["ranges"], resumed=resumed)
        receipts = _land(config, layout, catalog, source, plan, summary, progress, protection)
        summary.checkpoints = commit_and_anchor(
            layout, catalog, plan, receipts, anchor, progress, protection
        )
        catalog.set_state(summary.batch_id, "anchored")
        ends = {r["partition"]: r["end"] for r in plan["ranges"]}
        source.commit(config.group, config.topic, ends)
        catalog.set_state(summary.batch_id, "done")
        return summary


def commit_and_anchor(
    layout: DataLayout,
    catalog: Catalog,
    plan: dict,
    receipts: list[dict],
    anchor: Anchorer,
    progress: Progress,
    protection: Protection | None = None,
) -> list[dict]:
    """Append each dataset's new files to its log, write the checkpoints, anchor them together."""
    protection = protection or Protection(str(layout.private))
    checkpoints = []
    for dataset, start in plan["log_starts"].items():
        files = [(r["range"], r["files"][dataset]) for r in receipts if dataset in r["files"]]
        stats = [r["quality"][dataset] for r in receipts if dataset in r.get("quality", {})]
        checkpoint = _commit_dataset(
            layout, catalog, plan, dataset, start, files, (stats, protection)
        )
        if checkpoint is not None:  # None: nothing published for this dataset
            checkpoints.append(checkpoint)
    if checkpoints:
        progress(f"batch {plan['batch_id']}: anchoring {len(checkpoints)} checkpoints in one tx")
        for checkpoint, anchored in zip(checkpoints, anchor(checkpoints), strict=True):
            checkpoint.update(anchored)
            catalog.record_checkpoint(plan["batch_id"], checkpoint)
    return checkpoints


def _land(
    config: RunConfig,
    layout: DataLayout,
    catalog: Catalog,
    source: KafkaSource,
    plan: dict,
    summary: BatchSummary,
    progress: Progress,
    protection: Protection,
) -> list[dict]:
    """Run the Beam pipeline over the plan's chunks and collect every chunk's receipt."""
    chunks = [OffsetRange(**c) for c in plan["chunks"]]
    offsets = sum(c.size for c in chunks)
    progress(f"batch {summary.batch_id}: reading {offsets} offsets in {len(chunks)} chunks")
    writer = ChunkWriter(str(layout.root))
    graph.run(chunks, config.bootstrap, config.wire_format, writer, config.runner, protection)
    receipts = [read_receipt(layout, chunk) for chunk in chunks]
    _drop_duplicates(layout, catalog, source, plan["batch_id"], receipts)
    _count(summary, receipts)
    catalog.register_quarantine(plan["batch_id"], _quarantine_entries(receipts))
    catalog.set_state(
        summary.batch_id,
        "landed",
        records_read=summary.read,
        records_published=summary.published,
        records_quarantined=summary.quarantined,
    )
    return receipts


def _drop_duplicates(
    layout: DataLayout, catalog: Catalog, source: KafkaSource, batch_id: int, receipts: list[dict]
) -> None:
    """Quarantine records repeating a natural key published earlier, in any dataset they touch."""
    reasons: dict[tuple[int, int], str] = {}
    for dataset in sorted({d for r in receipts for d in r["files"]}):
        prior = [f["path"] for f in catalog.dataset_files(dataset) if f["batch_id"] != batch_id]
        new = [r["files"][dataset]["path"] for r in receipts if dataset in r["files"]]
        for record, message in find_duplicates(layout, dataset, prior, new).items():
            reasons.setdefault(record, message)
    if reasons:
        for receipt in receipts:
            drop_records(layout, receipt, set(reasons))
            quarantine_duplicates(layout, source, receipt, reasons)


def log_starts(layout: DataLayout) -> dict[str, int]:
    """Where every dataset's log stands: any registered format may turn up in a batch."""
    return {d: DatasetLog(layout.dataset_dir(d) / "log").size for d in all_datasets()}


def _plan(config: RunConfig, source: KafkaSource, catalog: Catalog) -> tuple[dict | None, bool]:
    """The unfinished batch's journaled plan, or a new plan journaled before it runs."""
    unfinished = catalog.unfinished_batch(config.topic)
    if unfinished is not None:
        return unfinished[1], True
    committed = source.committed(config.group, config.topic)
    ends = source.high_watermarks(config.topic)
    budget = config.max_batch_records
    ranges = []
    for partition in sorted(ends):
        start = committed.get(partition, 0)
        end = min(ends[partition], start + budget)
        if end > start:
            ranges.append(OffsetRange(config.topic, partition, start, end))
            budget -= end - start
        if budget <= 0:
            break
    if not ranges:
        return None, False
    layout = DataLayout(config.data_dir)
    batch_id = catalog.next_batch_id()
    plan = {
        "batch_id": batch_id,
        "planned_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ranges": [r.as_dict() for r in ranges],
        "chunks": [c.as_dict() for r in ranges for c in r.split(config.max_chunk_records)],
        "log_starts": log_starts(layout),
    }
    catalog.record_plan(batch_id, config.topic, plan)
    return plan, False


def _count(summary: BatchSummary, receipts: list[dict]) -> None:
    null_cells = cells = 0
    for receipt in receipts:
        summary.read += receipt["read"]
        summary.published += receipt["published"]
        summary.quarantined += receipt["quarantined"]
        summary.suppressed += receipt.get("suppressed", 0)
        for code, count in receipt["reasons"].items():
            summary.reasons[code] = summary.reasons.get(code, 0) + count
        for stats in receipt.get("quality", {}).values():
            null_cells, cells = null_cells + stats["null_cells"], cells + stats["cells"]
            for flag, count in stats["flags"].items():
                summary.flags[flag] = summary.flags.get(flag, 0) + count
    if summary.read != summary.published + summary.quarantined + summary.suppressed:
        raise AssertionError(f"batch {summary.batch_id} does not reconcile: {summary.as_dict()}")
    summary.reasons = dict(sorted(summary.reasons.items()))
    summary.flags = dict(sorted((k, v) for k, v in summary.flags.items() if v))
    issues = {**summary.reasons, **summary.flags}
    summary.quality_score = score(components_from_counts(summary.read, issues, null_cells, cells))


def _commit_dataset(
    layout: DataLayout,
    catalog: Catalog,
    plan: dict,
    dataset: str,
    start: int,
    landed: list[tuple[dict, dict]],
    quality_inputs: tuple[list[dict], Protection],
) -> dict | None:
    """Append the batch's rows to the dataset's log and write its checkpoint manifest."""
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
    dataset_dir = layout.dataset_dir(dataset)
    size, root = DatasetLog(dataset_dir / "log").append_at(start, hashes)
    previous = catalog.checkpoints(dataset)
    previous = [c for c in previous if c["tree_size"] < size]
    before = load_manifest(layout.root / previous[-1]["manifest_path"])[0] if previous else {}
    stats, protection = quality_inputs
    new_files = [file["path"] for _, file in landed]
    quality = write_quality_report(layout, schema, size, new_files, stats, before.get("quality"))
    ge_seconds = quality.pop("_ge_seconds")
    signer = publisher_key(layout.root)
    manifest = build_manifest(
        dataset=dataset,
        tree_size=size,
        root=root,
        schema=schema.describe(),
        fingerprint=schema.fingerprint(),
        files=[_manifest_file(layout, dataset_dir, f) for f in catalog.dataset_files(dataset)],
        batch={
            "id": plan["batch_id"],
            "planned_at": plan["planned_at"],
            "ranges": plan.get("ranges", []),
            "kind": plan.get("kind", "stream"),
        },
        previous=_previous(previous[-1]) if previous else None,
        pipeline_version=PIPELINE_VERSION,
        publisher=signer.describe(),
        quality=quality,
        privacy=protection.manifest_section(schema, stats, before.get("privacy")),
    )
    path, digest = write_manifest(dataset_dir, manifest, signer)
    catalog.set_state(plan["batch_id"], "committed")
    return {
        "dataset": dataset,
        "tree_size": size,
        "root": root.hex(),
        "manifest_path": layout.relative(path),
        "manifest_sha256": digest.hex(),
        "quality_score": quality["score"],
        "ge_seconds": ge_seconds,
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


def _quarantine_entries(receipts: list[dict]) -> list[dict]:
    """Catalog entries for each chunk's quarantine file and its cross-chunk duplicates file."""
    entries = []
    for r in receipts:
        duplicates = r.get("duplicates_file")
        later = duplicates["rows"] if duplicates else 0
        if r["quarantine_file"]:
            reasons = {**r["reasons"], "duplicate": r["reasons"].get("duplicate", 0) - later}
            entries.append(
                {
                    **r["range"],
                    "path": r["quarantine_file"],
                    "rows": r["quarantined"] - later,
                    "reasons": {code: n for code, n in reasons.items() if n},
                }
            )
        if duplicates:
            entries.append(
                {
                    **r["range"],
                    "path": duplicates["path"],
                    "rows": later,
                    "reasons": {"duplicate": later},
                }
            )
    return entries
