"""Proof bundles of version 2: a row of a shard, proven up to a dataset checkpoint over shards.

The bundle carries the row, its leaf index and audit path in the **shard's** tree (as version 1
does for a dataset's own log), the shard head that tree's root belongs to, the head's index and
audit path in the tree of the checkpoint's heads (``proofs.shards``), and the dataset checkpoint
(size, root over the heads, manifest hash, number of heads) that is anchored. So the proof is
row → leaf → shard root → shard head → dataset root → anchor (docs/proof-format.md §10).
Standard library only, like ``proofs.bundle``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proofs.log import DatasetLog
from proofs.merkle import leaf_hash
from proofs.merkle_verify import verify_inclusion
from proofs.shards import HEAD_MEMBERS, head_bytes, head_path, is_shard_of
from proofs.verdict import Check

BUNDLE_VERSION = 2
BUNDLE_V2_CHECKS = ("bundle", "leaf", "inclusion", "shard", "identity", "anchor")


def build_shard_bundles(
    log: DatasetLog,
    leaf_indices: Sequence[int],
    rows: Sequence[bytes | Mapping[str, Any]],
    heads: Sequence[Mapping[str, Any]],
    checkpoint: Mapping[str, Any],
    anchor: dict[str, Any] | None,
    dataset: str,
) -> list[dict[str, Any]]:
    """One bundle per row: ``rows[i]`` is leaf ``leaf_indices[i]`` of the shard ``log``, whose
    head is one of ``heads`` (the dataset checkpoint's, in its order). ``checkpoint`` has
    ``tree_size``, ``root`` and ``manifest_sha256``; ``anchor`` is ``proofs.bundle``'s anchor
    section (or None). ``ValueError`` when anything would not verify."""
    from proofs.bundle import row_bundle  # the shard-level part is version 1's

    index = next((i for i, h in enumerate(heads) if h["shard"] == log.log_id), None)
    if index is None:
        raise ValueError(f"the checkpoint lists no head of {log.log_id}")
    head = {name: heads[index][name] for name in HEAD_MEMBERS}
    committed = {
        "log": dataset,
        "tree_size": checkpoint["tree_size"],
        "root": checkpoint["root"],
        "manifest_sha256": checkpoint["manifest_sha256"],
        "shards": len(heads),
    }
    if log.root(head["tree_size"]).hex() != head["root"]:
        raise ValueError(f"log {log.log_id} has another root at size {head['tree_size']}")
    if len(leaf_indices) != len(rows):
        raise ValueError(f"{len(leaf_indices)} leaf indices for {len(rows)} rows")
    path = [h.hex() for h in head_path(heads, index)]
    shard_checkpoint = {"log": log.log_id, **{k: head[k] for k in ("tree_size", "root")}}
    shard_checkpoint["manifest_sha256"] = heads[index]["manifest_sha256"]
    bundles = []
    for leaf, row in zip(leaf_indices, rows, strict=True):
        bundle = row_bundle(log, dataset, leaf, row, shard_checkpoint, None)
        del bundle["checkpoint"]
        bundle.update(
            bundle_version=BUNDLE_VERSION,
            shard=head,
            head_index=index,
            head_path=path,
            checkpoint=committed,
            anchor=anchor,
        )
        bundles.append(bundle)
    return bundles


def malformed_v2(bundle: Mapping[str, Any]) -> str | None:
    """The version-2 members' shape (the rest is version 1's, checked by ``proofs.bundle``)."""
    shard, checkpoint = bundle.get("shard"), bundle.get("checkpoint")
    if not isinstance(shard, Mapping) or set(shard) != set(HEAD_MEMBERS):
        return f"shard must be the shard head: {', '.join(HEAD_MEMBERS)}"
    if shard["shard"] != bundle.get("log") or not is_shard_of(shard["shard"], bundle["dataset"]):
        return "shard.shard must be the bundle's log, a shard of the dataset"
    if checkpoint.get("log") != bundle["dataset"]:
        return "checkpoint.log must be the dataset id"
    for key, value in (
        ("shard.tree_size", shard["tree_size"]),
        ("head_index", bundle.get("head_index")),
        ("checkpoint.shards", checkpoint.get("shards")),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} must be a non-negative integer"
    path = bundle.get("head_path")
    hashes = [("shard.root", shard["root"])]
    if not isinstance(path, list):
        return "head_path must be a list of hashes"
    hashes += [(f"head_path[{i}]", h) for i, h in enumerate(path)]
    for key, value in hashes:
        if not (
            isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef")
        ):
            return f"{key} must be 64 lowercase hex digits"
    return None


def shard_checks(bundle: Mapping[str, Any], digest: bytes) -> list[Check]:
    """Row → shard root (``inclusion``) and shard head → dataset root (``shard``)."""
    shard, checkpoint, index = bundle["shard"], bundle["checkpoint"], bundle["leaf_index"]
    path = [bytes.fromhex(h) for h in bundle["audit_path"]]
    if not verify_inclusion(digest, index, shard["tree_size"], path, bytes.fromhex(shard["root"])):
        return [
            Check(
                "inclusion",
                False,
                f"leaf {index}: the audit path does not lead to the root of shard "
                f"{shard['shard']} at size {shard['tree_size']}",
            )
        ]
    checks = [
        Check(
            "inclusion",
            True,
            f"leaf {index} is in shard {shard['shard']} at size {shard['tree_size']}",
        )
    ]
    head_hash = leaf_hash(head_bytes(shard))
    head_proof = [bytes.fromhex(h) for h in bundle["head_path"]]
    if not verify_inclusion(
        head_hash,
        bundle["head_index"],
        checkpoint["shards"],
        head_proof,
        bytes.fromhex(checkpoint["root"]),
    ):
        checks.append(
            Check(
                "shard",
                False,
                f"the head of {shard['shard']} is not head {bundle['head_index']} of the "
                f"checkpoint of size {checkpoint['tree_size']}",
            )
        )
        return checks
    checks.append(
        Check(
            "shard",
            True,
            f"the head of {shard['shard']} is in the dataset checkpoint of size "
            f"{checkpoint['tree_size']} ({checkpoint['shards']} shards)",
        )
    )
    return checks
