"""What one micro-batch is: its settings, its outcome, and the callbacks it reports through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.kafka_source import DEFAULT_CLIENT
from streaming.schedule import MIN_PARTITION_SHARE
from validators.event_time import WindowSettings
from validators.score import components_from_counts, score

# Bytes of records one work item may hold (keys, values, headers). 1,000 records of a megabyte each
# in one batch: 0.82 GB peak in `rda run --once`'s landing child, against 5.06 GB unbounded.
DEFAULT_MAX_CHUNK_BYTES = 32 << 20

# Anchors a batch's checkpoints (dataset, tree_size, root, manifest_sha256) in one transaction;
# a ChainContext's ``anchor`` (whose context also answers ``latest``: streaming/checkpoints.py).
Anchorer = Callable[[list[dict]], list[dict]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig:
    bootstrap: str
    topic: str
    group: str
    data_dir: Path | str  # a local folder, or s3://BUCKET/PREFIX
    wire_format: str | None = "auto"  # for records without a format header; auto: sniff
    max_chunk_records: int = 50_000
    # A work item whose records pass this many bytes is split where they do (``_split_chunk`` in
    # streaming/poison.py): Kafka offsets say nothing of bytes, and a record may be a megabyte.
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES
    max_batch_records: int = 2_000_000
    runner: str = "fnapi"
    kafka_timeout: float = 30.0  # seconds without an answer before a read fails (and is retried)
    kafka_client: str = DEFAULT_CLIENT  # confluent (librdkafka) or kafka-python
    dask_scheduler: str | None = None  # with runner "dask"; None: a local cluster
    crash_limit: int = 3  # worker crashes on one batch before it is bisected (streaming/poison)
    isolate: bool = True  # land in a forked child, so a crashing record cannot stop the run
    work_dir: Path | None = None  # this worker's local state; None: see streaming/store.py
    # End of input: once the batch has read everything there is, close every event-time window
    # (sessions held for an open window are then released; streaming/event_time.py).
    flush_windows: bool = False
    windows: WindowSettings = field(default_factory=WindowSettings)
    signatures: str = "auto"  # device signatures: required, unsigned or auto (streaming/node_cache)
    # Read on past records retention deleted before the stream read them, recording the offsets
    # in the plan and manifests (streaming/records_lost.py); else the stream stops on them.
    accept_retention_loss: bool = False
    nodes: Any = None  # the node registry's ingest cache (streaming.node_cache.NodeRegistryCache)
    # Under a backlog, a batch reads only as many partitions, in turn, as get this many records
    # each (streaming/schedule.py); 0: every partition in every batch.
    min_partition_share: int = MIN_PARTITION_SHARE
    # A quality worker of this run's validates the files a checkpoint adds as soon as they are
    # written, while the run commits and anchors them (streaming/quality_queue.py).
    validate_ahead: bool = False


@dataclass
class BatchSummary:
    batch_id: int
    ranges: list[dict]
    read: int = 0
    published: int = 0
    quarantined: int = 0
    suppressed: int = 0  # withheld for k-anonymity, kept privately
    held: int = 0  # change in records held for their event-time window (negative: released)
    held_total: int = 0  # records held after the batch
    held_until: str | None = None  # the watermark (event time) that releases all of them
    reasons: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    quality_score: float | None = None
    checkpoints: list[dict] = field(default_factory=list)
    resumed: bool = False
    steps: dict[str, float] = field(default_factory=dict)  # seconds spent in each step
    crashes: int = 0  # worker processes that died landing this batch (this attempt)
    windows_closed: list[dict] = field(default_factory=list)  # their quality figures
    lost: int = 0  # offsets skipped as deleted by retention (--accept-retention-loss): never read

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "ranges": self.ranges,
            "records_read": self.read,
            "records_published": self.published,
            "records_quarantined": self.quarantined,
            "records_suppressed": self.suppressed,
            "records_held": self.held,
            "held_total": self.held_total,
            "held_until": self.held_until,
            "records_lost": self.lost,
            "windows_closed": self.windows_closed,
            "quarantine_reasons": self.reasons,
            "quality_flags": self.flags,
            "quality_score": self.quality_score,
            "checkpoints": self.checkpoints,
            "resumed": self.resumed,
            "steps_seconds": {k: round(v, 3) for k, v in self.steps.items()},
        }


def count_receipts(summary: BatchSummary, receipts: list[dict]) -> None:
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
