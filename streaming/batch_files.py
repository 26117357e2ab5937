"""A batch's published files: which shard of which dataset each one grows, and their copy to
the data directory's store.

Each chunk's receipt names the files the event-time step wrote for it, one per dataset; a file
belongs to the shard of its dataset and Kafka partition (``proofs/shards.py``). The commit
(``streaming/commit.py``) appends each shard's files in the plan's chunk order, which is the
leaf order; before it, the files, their leaves and the batch's private files are copied to the
store, where workers, buyers and auditors read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proofs.shard_log import leaves_path
from proofs.shards import shard_id
from schemas.registry import all_datasets
from sinks.layout import DataLayout
from sinks.storage import Store


@dataclass
class ShardRows:
    """One shard's new files in a batch (their ``files[]`` entries, leaf starts still to come)."""

    dataset: str
    shard: str
    files: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)  # quality stats of their chunks
    windows: list[dict[str, Any]] = field(default_factory=list)  # event-time windows it closed


def shard_rows(work: DataLayout, receipts: list[dict]) -> dict[str, list[ShardRows]]:
    """The batch's files by dataset, then shard (in the plan's chunk order: the leaf order)."""
    found: dict[str, dict[str, ShardRows]] = {}
    for receipt in receipts:
        source = receipt["range"]
        for dataset, file in sorted(receipt["files"].items()):
            shard = shard_id(dataset, source["topic"], source["partition"])
            rows = found.setdefault(dataset, {}).setdefault(shard, ShardRows(dataset, shard))
            rows.files.append(
                {
                    "path": work.in_dataset(dataset, file["path"]),
                    "sha256": file["sha256"],
                    "bytes": (work.root / file["path"]).stat().st_size,
                    "rows": file["rows"],
                    "source": dict(source),
                    "batch_id": receipt.get("batch_id"),
                }
            )
            if dataset in receipt.get("quality", {}):
                rows.stats.append(receipt["quality"][dataset])
            rows.windows += receipt.get("windows", {}).get(dataset, [])
    order = {d: i for i, d in enumerate(all_datasets())}  # the registry's order, as before
    ranked = sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    return {d: [shards[s] for s in sorted(shards)] for d, shards in ranked}


def added_files(shards: list[ShardRows]) -> list[dict[str, Any]]:
    """The files a dataset's checkpoint adds: path from the work root, sha256."""
    return [
        {"path": f"published/{rows.dataset}/{f['path']}", "sha256": f["sha256"]}
        for rows in shards
        for f in rows.files
    ]


def publish_batch_files(
    store: Store, work: DataLayout, receipts: list[dict], extra: list[str] = ()
) -> int:
    """Copy the batch's landed objects to the store: Parquet files and their leaves, the
    private quarantine and suppressed files, and ``extra`` paths; the number copied (none when
    the work directory is the data directory)."""
    copied = 0
    paths = list(extra)
    for receipt in receipts:
        files = [f["path"] for f in receipt["files"].values()]
        paths += files + [leaves_path(p) for p in files]
        paths += [receipt.get(k) for k in ("quarantine_file", "suppressed_file")]
        paths.append((receipt.get("duplicates_file") or {}).get("path"))
    for path in filter(None, paths):
        local = work.root / path
        if local.exists():
            store.put_file(local, path)
            copied += 1
    return copied
