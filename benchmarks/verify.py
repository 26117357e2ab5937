"""The auditor's verifier: seconds per million rows with the default checks, against a bare
re-hash of the same rows in the same run.

A dataset of radio-KPI-like rows (21 columns: strings, UTC timestamps, integers, doubles, nulls)
is published in 10 checkpoints, as the pipeline lays it out (Parquet files, the stored log,
signed manifests), anchored on the in-process EVM with the publisher identity published. Then:

- baseline: read every file and re-hash its rows into the RFC 9162 root (what any verifier must
  do at least, with nothing checked around it);
- default: ``rda verify``'s checks (``proofs.audit.audit_log``): files' SHA-256, rows → root,
  manifest, signature, identity binding, anchor, and the history: previous links, consistency
  proofs, every checkpoint's anchor, ``latest()``, the registry's chain of anchors;
- history only (``rda verify --history``).

Chain reads go to the in-process EVM (a few ms per view call; a node over loopback is faster).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.timing import best_seconds
from proofs.audit import audit_log
from proofs.history import verify_history
from proofs.leaves import leaf_hashes_for_batch
from proofs.log import DatasetLog
from proofs.manifest import all_manifests, build_manifest, load_manifest, write_manifest
from proofs.merkle import MerkleFrontier
from proofs.signing import publisher_key
from proofs.verdict import VERIFIED
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.chain_binding import publish_identity

DATASET = "radio_kpi.v1"
CHECKPOINTS = 10
START_US = 1_764_000_000_000_000


def run(quick: bool = False) -> dict:
    rows = 200_000 if quick else 1_000_000
    repeat = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="rda-bench-verify-") as directory:
        root = Path(directory)
        chain = open_chain("embedded", None, None)
        publish_identity(chain, DataLayout(root))
        dataset_dir = _publish(root, chain, rows)
        trust = chain.trust_root()
        verdict = audit_log(dataset_dir, trust)
        if verdict.status != VERIFIED:
            raise AssertionError(f"the benchmark's dataset does not verify: {verdict.as_dict()}")
        baseline = best_seconds(lambda: _rehash(dataset_dir), repeat)
        # A new trust root each time: nothing read from the chain is reused between runs.
        default = best_seconds(lambda: audit_log(dataset_dir, chain.trust_root()), repeat)
        history = best_seconds(lambda: verify_history(dataset_dir, chain.trust_root()), repeat)
    per_million = 1_000_000 / rows
    figures = {
        "rows": rows,
        "checkpoints": CHECKPOINTS,
        "rehash_s_per_million_rows": round(baseline * per_million, 2),
        "default_s_per_million_rows": round(default * per_million, 2),
        "history_only_s": round(history, 3),
        "ratio_default_vs_rehash": round(default / baseline, 3),
    }
    summary = (
        f"verify {rows:,} rows in {CHECKPOINTS} checkpoints: default checks (history + latest) "
        f"{figures['default_s_per_million_rows']} s per million rows vs bare re-hash "
        f"{figures['rehash_s_per_million_rows']} s ({figures['ratio_default_vs_rehash']}x); "
        f"history alone {figures['history_only_s']} s"
    )
    return {
        "name": "verify",
        "goal": "default checks (history + latest() included) <= 1.2x the bare re-hash",
        **figures,
        "summary": summary,
    }


def _rows(first: int, count: int) -> pa.Table:
    index = np.arange(first, first + count)
    rng = np.random.default_rng(first)
    nodes = pa.array([f"node-{i % 500:05d}" for i in index])
    maybe = rng.random(count) < 0.1
    return pa.table(
        {
            "node_id": nodes,
            "event_time": pa.array(START_US + index * 1_000_000, pa.timestamp("us", tz="UTC")),
            "cell_id": pa.array(2_560_000 + index % 500, pa.int64()),
            "pci": pa.array((index % 504).astype(np.int32)),
            "earfcn": pa.array(np.full(count, 1850, np.int32)),
            "band": pa.array(["B3"] * count),
            "rsrp_dbm": pa.array(-140 + rng.random(count) * 97),
            "rsrq_db": pa.array(-20 + rng.random(count) * 17, mask=maybe),
            "sinr_db": pa.array(-20 + rng.random(count) * 50, mask=maybe),
            "dl_throughput_mbps": pa.array(rng.random(count) * 300),
            "ul_throughput_mbps": pa.array(rng.random(count) * 50),
            "latency_ms": pa.array(5 + rng.random(count) * 80),
            "prb_utilization_pct": pa.array(rng.random(count) * 100),
            "connected_ues": pa.array((index % 64).astype(np.int32)),
            "latitude": pa.array(37 + rng.random(count)),
            "longitude": pa.array(-122 + rng.random(count)),
            "quality_flags": pa.array([None] * count, pa.string()),
            "source_topic": pa.array(["node-telemetry"] * count),
            "source_partition": pa.array((index % 4).astype(np.int32)),
            "source_offset": pa.array(index, pa.int64()),
            "ingest_time": pa.array(
                START_US + index * 1_000_000 + 250, pa.timestamp("us", tz="UTC")
            ),
        }
    )


def _publish(root: Path, chain, rows: int) -> Path:
    """``CHECKPOINTS`` batches: files, log, signed manifests; all anchored in one transaction."""
    dataset_dir = root / "published" / DATASET
    log = DatasetLog(dataset_dir / "log")
    signer = publisher_key(root)
    schema = {"name": "radio_kpi", "version": "1.0", "natural_key": [], "fields": []}
    files, checkpoints, previous = [], [], None
    per_batch = rows // CHECKPOINTS
    for number in range(CHECKPOINTS):
        table = _rows(number * per_batch, per_batch)
        path = dataset_dir / "data" / f"batch-{number:04d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        data = path.read_bytes()
        files.append(
            {"path": f"data/{path.name}", "sha256": hashlib.sha256(data).hexdigest(),
             "bytes": len(data), "rows": per_batch, "leaf_start": log.size,
             "source": {"topic": "node-telemetry", "partition": 0, "start": 0, "end": 0}}
        )  # fmt: skip
        size, tree_root = log.append_at(log.size, leaf_hashes_for_batch(table))
        manifest = build_manifest(
            dataset=DATASET, tree_size=size, root=tree_root, schema=schema, fingerprint="0" * 64,
            files=list(files), batch={"id": number, "planned_at": "", "ranges": []},
            previous=previous, pipeline_version="bench", publisher=signer.describe(),
        )  # fmt: skip
        _, digest = write_manifest(dataset_dir, manifest, signer)
        checkpoints.append(
            {"dataset": DATASET, "tree_size": size, "root": tree_root.hex(),
             "manifest_sha256": digest.hex(),
             "previous_tree_size": previous["tree_size"] if previous else 0}
        )  # fmt: skip
        previous = {"tree_size": size, "root": tree_root.hex(), "manifest_sha256": digest.hex()}
    chain.anchor(checkpoints)
    return dataset_dir


def _rehash(dataset_dir: Path) -> bytes:
    """The bare minimum: every row of the newest checkpoint re-hashed into its root."""
    manifest, _ = load_manifest(all_manifests(dataset_dir)[-1])
    frontier = MerkleFrontier()
    for entry in manifest["files"]:
        frontier.extend(leaf_hashes_for_batch(pq.read_table(dataset_dir / entry["path"])))
    if frontier.root().hex() != manifest["checkpoint"]["root"]:
        raise AssertionError("the re-hash does not give the manifest's root")
    return frontier.root()
