"""Verifying a dataset checkpoint over shard heads (manifest version 2).

Every shard the checkpoint lists is verified as a version-1 checkpoint is (files, rows, root,
Data Package, signature: ``proofs.verify``), against its shard manifest, which must be the one
the head names by hash and describe the head's size and root — a chained one (version 3) with
the earlier manifests its ``previous`` links name by hash, each checked as a checkpoint of the
rows before it (its files, root and Data Package; the head's signature binds them all); the
heads must hash to the checkpoint's root (``proofs.shards``) and add up to its size; the dataset
manifest's signature, the publisher identity and the anchor on the pinned registry are checked
as for version 1. Offsets the checkpoint's batch says it skipped (``batch.lost[]``) are shown
beside the manifest check (``proofs.skipped_offsets``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proofs import schema_docs
from proofs.log import LogRef
from proofs.manifest import load_manifest, manifest_problem
from proofs.merkle import MerkleFrontier
from proofs.shard_chain import chain
from proofs.shard_log import manifest_loader
from proofs.shards import heads_root, shard_folder
from proofs.skipped_offsets import with_skipped
from proofs.trust import TrustRoot
from proofs.verdict import CHECKPOINT_CHECKS, Check, Verdict

SHARDED_CHECKS = (*CHECKPOINT_CHECKS, "shards")
_PER_SHARD = ("files", "root", "manifest")


def verify_sharded(
    dataset_dir: Path,
    manifest_file: Path,
    manifest: dict[str, Any],
    digest: bytes,
    trust: TrustRoot,
) -> Verdict:
    """The verdict on the dataset checkpoint ``manifest`` (already shape-checked)."""
    from proofs.verify import (
        attestation_check,
        attestation_pending,
        names_attestation,
        refused_unread,
        signature_check,
    )

    checkpoint = manifest["checkpoint"]
    verdict = Verdict(manifest["dataset"], checkpoint["tree_size"], checkpoint["root"])
    verdict.log, verdict.required = manifest["dataset"], SHARDED_CHECKS
    identity = trust.identity_check()
    anchor, anchored = trust.anchor_check(
        verdict.log, verdict.tree_size, verdict.root, digest.hex()
    )
    anchored_at = anchored.anchored_at if anchored is not None and anchor.ok else None
    signature = signature_check(manifest_file, manifest, trust, anchored_at)
    if signature.ok is False:  # no shard's rows are read
        return refused_unread(verdict, signature, identity, anchor)
    per_shard: dict[str, list[Check]] = {name: [] for name in (*_PER_SHARD, "signature")}
    binding = []
    if schema_docs.by_reference(manifest):  # the dataset manifest's own schema document
        problem = schema_docs.reference_problem(dataset_dir, manifest)
        if problem is not None:
            per_shard["manifest"].append(Check("manifest", False, f"{verdict.log}: {problem}"))
    for head in manifest["shards"]:
        checks = _verify_shard(dataset_dir, manifest["dataset"], head, trust, anchored_at)
        for check in checks:
            per_shard.get(check.name, binding).append(check)
    verdict.checks += [_summary(name, per_shard[name]) for name in _PER_SHARD if per_shard[name]]
    pending = attestation_pending(dataset_dir, manifest)
    for check in verdict.checks:
        if check.name == "manifest" and check.ok and pending:
            check.detail += "; GE report pending (it runs after the anchor)"
    _show_skipped(verdict, manifest)
    verdict.checks.append(_binding_check(manifest, binding))
    verdict.checks.append(_signatures(signature, per_shard["signature"]))
    verdict.checks += [identity, anchor]
    if names_attestation(manifest) and not pending:  # the shard manifests read only then
        added = _added(dataset_dir, manifest)
        attested = attestation_check(dataset_dir, manifest, digest.hex(), added)
        if attested is not None:
            verdict.checks.append(attested)
    return verdict


def _added(dataset_dir: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """The files the checkpoint's batch added to its shards (path → SHA-256): its GE report's."""
    batch = (manifest.get("batch") or {}).get("id")
    added = {}
    for head in manifest["shards"]:
        try:
            shard_manifest, _ = load_manifest(dataset_dir / head["manifest_path"])
        except (OSError, ValueError):
            continue  # refused by the shard checks already
        for entry in shard_manifest.get("files", []):
            if entry.get("batch_id") == batch:
                added[entry["path"]] = entry["sha256"]
    return added


def _verify_shard(
    dataset_dir: Path, dataset: str, head: dict[str, Any], trust: TrustRoot, at: int | None
) -> list[Check]:
    """The checks of one shard: its manifest is the head's, and holds as a checkpoint."""
    from proofs.verify import signature_check

    shard = head["shard"]
    path = dataset_dir / head["manifest_path"]
    try:
        shard_manifest, shard_digest = load_manifest(path)
    except (OSError, ValueError) as error:
        return [Check("shards", False, f"{shard}: manifest {head['manifest_path']}: {error}")]
    if shard_digest.hex() != head["manifest_sha256"]:
        return [Check("shards", False, f"{shard}: {head['manifest_path']} is not the head's")]
    problem = manifest_problem(shard_manifest)
    named = (shard_manifest.get("dataset"), shard_manifest.get("log", dataset))
    if problem is None and named != (dataset, shard):
        problem = f"it describes log {named[1]} of {named[0]}"
    if problem is None and (
        shard_manifest["checkpoint"]["tree_size"],
        shard_manifest["checkpoint"]["root"],
    ) != (head["tree_size"], head["root"]):
        problem = "its size and root are not the head's"
    if problem is not None:
        return [Check("shards", False, f"{shard}: {problem}")]
    try:
        links = chain(shard, shard_manifest, manifest_loader(dataset_dir))
    except (OSError, ValueError) as error:
        return [Check("shards", False, f"{shard}: an earlier manifest of its chain: {error}")]
    checks = _verify_links(
        dataset_dir, LogRef(shard, dataset_dir / shard_folder(shard) / "log"), links
    )
    if checks[0].ok:
        checks.append(signature_check(path, shard_manifest, trust, at))
    return [_named(check, shard) for check in checks]


def _verify_links(dataset_dir: Path, log: LogRef, links: list[dict[str, Any]]) -> list[Check]:
    """A shard's manifests, oldest first (one, or a chain: each lists the files it adds), each
    checked as a checkpoint of the log its files re-hash into: files, root, Data Package."""
    from proofs.verify import _package_check, _rehash_files, _root_check

    frontier, files, schemas = MerkleFrontier(), 0, {}
    for link in links:
        listed = _rehash_files(dataset_dir, link["files"], log, frontier)
        if not listed.ok:
            return [listed]
        files += len(link["files"])
        root = _root_check(frontier, link["checkpoint"])
        stored = link["checkpoint"].get("frontier")
        if root.ok and stored is not None and stored != frontier.to_dict()["hashes"]:
            root = Check("root", False, "checkpoint.frontier is not the tree's")
        package = _package_check(dataset_dir, link, schemas)
        if not (root.ok and package.ok):
            size = link["checkpoint"]["tree_size"]
            where = "" if link is links[-1] else f" (its checkpoint of size {size})"
            failed = root if not root.ok else package
            return [_files_matched(files), Check(failed.name, False, failed.detail + where)]
    if len(links) == 1:
        return [_files_matched(files), root, package]
    chained = f" in a chain of {len(links)} manifests"
    package = Check("manifest", True, f"{files} resources{chained} match; last: {package.detail}")
    return [_files_matched(files, chained), root, package]


def _files_matched(count: int, where: str = "") -> Check:
    return Check("files", True, f"{count} files{where} match their SHA-256 and row counts")


def _binding_check(manifest: dict[str, Any], failures: list[Check]) -> Check:
    if failures:
        return failures[0]
    heads, checkpoint = manifest["shards"], manifest["checkpoint"]
    computed = heads_root(heads).hex()
    if computed != checkpoint["root"]:
        return Check(
            "shards", False, f"the shard heads hash to {computed}, not to {checkpoint['root']}"
        )
    return Check(
        "shards",
        True,
        f"{len(heads)} shard heads are their shard manifests and hash to the checkpoint's root",
    )


def _signatures(dataset: Check, shards: list[Check]) -> Check:
    """The dataset manifest's signature and its shard manifests', as one check."""
    failed = next((c for c in shards if c.ok is not True), None)
    if dataset.ok is not True or failed is None:
        if dataset.ok and shards:
            return Check(
                "signature", True, f"{dataset.detail}; so are the {len(shards)} shard manifests"
            )
        return dataset
    return failed


def _named(check: Check, shard: str) -> Check:
    return Check(check.name, check.ok, f"{shard}: {check.detail}")


def _show_skipped(verdict: Verdict, manifest: dict[str, Any]) -> None:
    """The offsets the checkpoint's batch says it skipped, beside a passed manifest check (a
    malformed declaration fails it)."""
    verdict.checks = [
        with_skipped(check, manifest) if check.name == "manifest" else check
        for check in verdict.checks
    ]


def _summary(name: str, checks: list[Check]) -> Check:
    failed = next((c for c in checks if c.ok is False), None)
    unchecked = next((c for c in checks if c.ok is None), None)
    if failed or unchecked:
        return failed or unchecked
    if len(checks) == 1:
        return checks[0]
    return Check(name, True, f"{len(checks)} shards; last: {checks[-1].detail}")
