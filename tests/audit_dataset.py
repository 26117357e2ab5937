"""A small published dataset built with the real proof pieces, for audit and tamper tests.

Parquet files on disk, the dataset's Merkle log, signed checkpoint manifests and anchors on the
in-process EVM, exactly as the driver lays them out, without Kafka or Beam in the way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from proofs.leaves import leaf_hashes_for_batch
from proofs.log import DatasetLog
from proofs.manifest import build_manifest, write_manifest
from proofs.signing import publisher_key
from sinks.layout import DataLayout
from streaming.chain import ChainContext
from streaming.chain_binding import publish_identity

DATASET = "probe.v1"
SCHEMA = pa.schema(
    [
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("rsrp_dbm", pa.float64()),
    ]
)
DESCRIBED = {
    "name": "probe",
    "version": "1.0",
    "description": "test rows",
    "natural_key": ["node_id", "ts"],
    "fields": [
        {"name": "node_id", "type": "string", "required": True},
        {"name": "ts", "type": "timestamp[us, tz=UTC]", "required": True},
        {"name": "rsrp_dbm", "type": "double", "unit": "dBm", "minimum": -140, "maximum": -43},
    ],
}


def rows(first: int, count: int) -> pa.Table:
    return pa.table(
        {
            "node_id": [f"node-{i:05d}" for i in range(first, first + count)],
            "ts": [1_764_000_000_000_000 + i * 1_000_000 for i in range(first, first + count)],
            "rsrp_dbm": [-100.0 + (i % 40) / 2 for i in range(first, first + count)],
        },
        schema=SCHEMA,
    )


def _write_file(dataset_dir: Path, number: int, table: pa.Table, leaf_start: int) -> dict:
    """Write one batch's Parquet file; its entry as a manifest's ``files[]`` lists it."""
    path = dataset_dir / "data" / f"batch-{number:04d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    data = path.read_bytes()
    end = leaf_start + table.num_rows
    return {
        "path": f"data/{path.name}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "rows": table.num_rows,
        "leaf_start": leaf_start,
        "source": {"topic": "t", "partition": 0, "start": leaf_start, "end": end},
    }


def publish(
    data_root: Path,
    batches: list[pa.Table],
    chain: ChainContext | None,
    dataset: str = DATASET,
    quality: dict | None = None,
) -> list[dict]:
    """Publish each table as one batch (one file, one checkpoint, one anchor); the checkpoints.

    With a chain, the data directory's publisher identity is published in its registry first
    (once), as ``rda run`` does at start: ``chain.trust_root()`` then pins it.
    """
    dataset_dir = data_root / "published" / dataset
    if chain is not None and chain.identity is None:
        publish_identity(chain, DataLayout(data_root))
    log = DatasetLog(dataset_dir / "log")
    signer = publisher_key(data_root)
    files: list[dict] = []
    checkpoints: list[dict] = []
    for number, table in enumerate(batches):
        files.append(_write_file(dataset_dir, number, table, log.size))
        size, root = log.append_at(log.size, leaf_hashes_for_batch(table))
        previous = checkpoints[-1] if checkpoints else None
        manifest = build_manifest(
            dataset=dataset,
            tree_size=size,
            root=root,
            schema=DESCRIBED,
            fingerprint="0" * 64,
            files=list(files),
            batch={"id": number, "planned_at": "2026-11-25T00:00:00+00:00", "ranges": []},
            previous=None
            if previous is None
            else {k: previous[k] for k in ("tree_size", "root", "manifest_sha256")},
            pipeline_version="test",
            publisher=signer.describe(),
            quality=quality if number == len(batches) - 1 else None,
        )
        manifest_file, digest = write_manifest(dataset_dir, manifest, signer)
        checkpoint = {
            "dataset": dataset,
            "tree_size": size,
            "root": root.hex(),
            "manifest_sha256": digest.hex(),
            "manifest_path": str(manifest_file),
            "previous_tree_size": previous["tree_size"] if previous else 0,
        }
        if chain is not None:
            (anchored,) = chain.anchor([checkpoint])
            checkpoint.update(anchored)
        checkpoints.append(checkpoint)
    return checkpoints


def first_failure(verdict) -> tuple[str, str]:
    """The name and detail of the first check a verdict failed (it must have failed one)."""
    failure = verdict.first_failure
    assert failure is not None, verdict.as_dict()
    return failure.name, failure.detail


def fabricated_bundle(dataset: str = DATASET, anchor: dict | None = None) -> dict:
    """A row nobody published, "proven" in a tree of size 1 whose root is its own leaf hash,
    with an all-zero manifest hash (issue 14, attacks 1 and 6)."""
    from proofs.jcs import canonicalize
    from proofs.merkle import leaf_hash

    row = {"node_id": "node-fabricated", "rsrp_dbm": -40.0}
    leaf = leaf_hash(canonicalize(row)).hex()
    return {
        "bundle_version": 1, "dataset": dataset, "log": dataset, "row": row, "leaf_index": 0,
        "leaf_hash": leaf, "audit_path": [],
        "checkpoint": {"log": dataset, "tree_size": 1, "root": leaf, "manifest_sha256": "00" * 32},
        "anchor": anchor,
    }  # fmt: skip
