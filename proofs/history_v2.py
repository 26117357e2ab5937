"""History across dataset checkpoints over shard heads (manifest version 2).

Between two successive checkpoints of a dataset, every shard of the earlier one must still be
listed, at the same or a larger size (a shard never disappears, a log never shrinks: a verifier
refuses a checkpoint that drops or rewinds a shard), and each shard that grew must have grown
consistently: an RFC 9162 consistency proof from the earlier head to the later one, read from
the shard's rebuilt log (``proofs.shard_log``), must hold. The first sharded checkpoint after
version-1 checkpoints lists the dataset's own log as its legacy shard, exactly as the last
version-1 checkpoint left it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from proofs.log import DatasetLog
from proofs.merkle_verify import verify_consistency
from proofs.shard_log import manifest_loader, shard_log
from proofs.shards import extension_problem
from proofs.verdict import Check


class ShardLogs:
    """Each shard's log, rebuilt once at its largest head, in a temporary directory (every
    smaller head of an honest history is a prefix of it; one that is not fails its proof).
    ``manifests`` are the checkpoints the publisher vouches for (``proofs.history``): a planted
    head is never rebuilt, whatever rows it claims."""

    def __init__(self, dataset_dir: Path, manifests: list[dict[str, Any]]) -> None:
        self.dataset_dir = dataset_dir
        self._heads: dict[str, dict[str, Any]] = {}
        for manifest in manifests:  # well-formed (``log_checkpoints``), of either version
            if manifest.get("kind") != "dataset":  # a version-1 one has no heads, whatever it says
                continue
            for entry in manifest["shards"]:
                known = self._heads.get(entry["shard"])
                if known is None or entry["tree_size"] >= known["tree_size"]:
                    self._heads[entry["shard"]] = entry
        self._logs: dict[str, DatasetLog] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None

    def log(self, shard: str) -> DatasetLog:
        if shard not in self._logs:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="rda-shard-logs-")
            head = self._heads[shard]
            # Only the manifest its head names (a planted one's log is not rebuilt).
            load = manifest_loader(self.dataset_dir)
            manifest = load(head["manifest_path"], head["manifest_sha256"])
            directory = Path(self._tmp.name) / str(len(self._logs))
            self._logs[shard] = shard_log(self.dataset_dir, manifest, directory)
        return self._logs[shard]

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def sharded_consistency(
    logs: ShardLogs, older: dict[str, Any], older_digest: bytes, newer: dict[str, Any]
) -> Check:
    """Whether the dataset checkpoint ``newer`` (version 2) extends ``older`` (either version)."""
    m, n = older["checkpoint"]["tree_size"], newer["checkpoint"]["tree_size"]
    if older.get("kind") != "dataset":  # version 1: the dataset's own log, now a legacy shard
        legacy = {
            "shard": older["dataset"],
            "tree_size": m,
            "root": older["checkpoint"]["root"],
            "manifest_sha256": older_digest.hex(),
        }
        older_heads = [legacy]
    else:
        older_heads = older["shards"]
    problem = extension_problem(older_heads, newer["shards"])
    if problem is not None:
        return Check("consistency", False, f"{m} → {n}: {problem}")
    later = {h["shard"]: h for h in newer["shards"]}
    grown = 0
    for head in older_heads:
        after = later[head["shard"]]
        if after["tree_size"] == head["tree_size"]:
            continue
        failure = _shard_consistency(logs, head, after)
        if failure is not None:
            return Check("consistency", False, f"{m} → {n}: {failure}")
        grown += 1
    return Check(
        "consistency",
        True,
        f"{m} → {n}: no shard dropped or rewound; {grown} grown consistently, "
        f"{len(newer['shards']) - len(older_heads)} new",
    )


def _shard_consistency(
    logs: ShardLogs, before: dict[str, Any], after: dict[str, Any]
) -> str | None:
    shard, m, n = before["shard"], before["tree_size"], after["tree_size"]
    try:
        proof = logs.log(shard).consistency_proof(m, n)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        # A shard manifest of another shape (a hostile one, signed all the same) is no log.
        return f"shard {shard} {m} → {n}: the shard's log gives no proof ({error})"
    if not verify_consistency(
        m, n, bytes.fromhex(before["root"]), bytes.fromhex(after["root"]), proof
    ):
        return (
            f"shard {shard}: the tree of size {n} does not extend the tree of size {m} "
            "(history rewritten after the earlier checkpoint)"
        )
    return None
