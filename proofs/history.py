"""History of a log: every checkpoint extends the one before it, as anchored.

For each successive pair of checkpoints ``(m, R1)``, ``(n, R2)`` of a log, the auditor takes a
consistency proof from the published log and checks it against the two roots (RFC 9162 2.1.4),
checks each manifest's ``previous`` link, and, given a chain, that every checkpoint is the one
anchored. Rewriting, removing or reordering a row that an earlier checkpoint covered makes the
later root inconsistent with the earlier anchored one, and the verdict names the pair.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

from proofs.log import DatasetLog, LogRef
from proofs.manifest import all_manifests, load_manifest
from proofs.merkle_verify import verify_consistency
from proofs.verify import AnchorLookup, Check, Verdict


def verify_history(
    dataset_dir: Path,
    anchor_lookup: AnchorLookup | None = None,
    anchor_unavailable_reason: str = "no chain to check against",
    log: LogRef | None = None,
) -> Verdict:
    """Consistency between every pair of successive checkpoints of ``log`` (default: the
    dataset's own log), their ``previous`` links, and their anchors."""
    log = log or LogRef.for_dataset(dataset_dir)
    checkpoints = []
    for path in all_manifests(dataset_dir):
        manifest, digest = load_manifest(path)
        if manifest.get("log", manifest["dataset"]) == log.log_id:
            checkpoints.append((path, manifest, digest))
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoint of log {log.log_id} under {dataset_dir}")
    last = checkpoints[-1][1]["checkpoint"]
    verdict = Verdict(checkpoints[-1][1]["dataset"], last["tree_size"], last["root"])
    verdict.log = log.log_id
    stored = DatasetLog(log)
    for (_, older, older_digest), (_, newer, _) in pairwise(checkpoints):
        verdict.checks.append(_link_check(older, older_digest, newer))
        verdict.checks.append(_consistency_check(stored, older, newer))
    if anchor_lookup is None:
        verdict.checks.append(Check("anchor", None, f"not checked: {anchor_unavailable_reason}"))
    else:
        for _, manifest, digest in checkpoints:
            verdict.checks.append(_anchor_check(log.log_id, manifest, digest, anchor_lookup))
    return verdict


def _link_check(older: dict[str, Any], older_digest: bytes, newer: dict[str, Any]) -> Check:
    m, n = older["checkpoint"]["tree_size"], newer["checkpoint"]["tree_size"]
    expected = {
        "tree_size": m,
        "root": older["checkpoint"]["root"],
        "manifest_sha256": older_digest.hex(),
    }
    if newer.get("previous") != expected:
        return Check("previous", False, f"checkpoint {n}: previous does not name checkpoint {m}")
    return Check("previous", True, f"checkpoint {n} names checkpoint {m} as its previous")


def _consistency_check(log: DatasetLog, older: dict[str, Any], newer: dict[str, Any]) -> Check:
    m, n = older["checkpoint"]["tree_size"], newer["checkpoint"]["tree_size"]
    old_root = bytes.fromhex(older["checkpoint"]["root"])
    new_root = bytes.fromhex(newer["checkpoint"]["root"])
    try:
        proof = log.consistency_proof(m, n)
    except (OSError, ValueError) as error:
        return Check("consistency", False, f"{m} → {n}: the log gives no proof ({error})")
    if not verify_consistency(m, n, old_root, new_root, proof):
        return Check(
            "consistency",
            False,
            f"{m} → {n}: the tree of size {n} does not extend the tree of size {m} "
            "(history rewritten after the earlier checkpoint)",
        )
    return Check("consistency", True, f"{m} → {n}: consistency proof of {len(proof)} hashes")


def _anchor_check(
    log_id: str, manifest: dict[str, Any], digest: bytes, lookup: AnchorLookup
) -> Check:
    size, root = manifest["checkpoint"]["tree_size"], manifest["checkpoint"]["root"]
    anchored = lookup(log_id, size)
    if anchored is None:
        return Check("anchor", False, f"checkpoint {size}: no anchor on chain")
    if anchored[0].hex() != root or anchored[1] != digest:
        return Check("anchor", False, f"checkpoint {size}: root or manifest differs from anchor")
    return Check("anchor", True, f"checkpoint {size}: matches its anchor")
