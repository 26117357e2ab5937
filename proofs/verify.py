"""Auditor's verification of a whole dataset checkpoint.

From the published folder alone: every file's SHA-256 against the manifest, every row re-encoded
and re-hashed into the RFC 9162 root, the root and tree size against the manifest, the
manifest's Data Package resources and quality report, its Ed25519 signature, and the manifest
hash and root against the on-chain anchor. The verdict names the first thing that differs: a
file, a row, a root, a resource, the signature, or an anchor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proofs.log import DatasetLog, LogRef
from proofs.manifest import latest_manifest, load_manifest, signature_path
from proofs.merkle import MerkleFrontier

# (dataset, tree_size) -> (root, manifest_hash) as anchored, or None when there is no anchor.
AnchorLookup = Callable[[str, int], "tuple[bytes, bytes] | None"]


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not checked (and why is in detail)
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Verdict:
    dataset: str
    tree_size: int
    root: str
    checks: list[Check] = field(default_factory=list)
    log: str | None = None  # the Merkle log checked, when not the dataset's own

    @property
    def ok(self) -> bool:
        return all(check.ok is not False for check in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((check for check in self.checks if check.ok is False), None)

    def as_dict(self) -> dict[str, Any]:
        failure = self.first_failure
        return {
            "dataset": self.dataset,
            "log": self.log or self.dataset,
            "tree_size": self.tree_size,
            "root": self.root,
            "verified": self.ok,
            "first_failure": failure.as_dict() if failure else None,
            "checks": [check.as_dict() for check in self.checks],
        }


def verify_dataset(
    dataset_dir: Path,
    manifest_file: Path | None = None,
    anchor_lookup: AnchorLookup | None = None,
    anchor_unavailable_reason: str = "no chain to check against",
    log: LogRef | None = None,
    publisher_key_id: str | None = None,
) -> Verdict:
    """Verify the checkpoint described by ``manifest_file`` (default: the latest one).

    ``publisher_key_id``, when the auditor knows it, pins the key that must have signed.

    ``log`` is where the committed leaves are, used only to name the first changed row of a
    changed file (default: the dataset's own log); the anchor is looked up under the manifest's
    ``log`` id.
    """
    log = log or LogRef.for_dataset(dataset_dir)
    manifest_file = manifest_file or latest_manifest(dataset_dir)
    if manifest_file is None:
        raise FileNotFoundError(f"no checkpoint manifest under {dataset_dir / 'checkpoints'}")
    manifest, manifest_digest = load_manifest(manifest_file)
    checkpoint = manifest["checkpoint"]
    verdict = Verdict(manifest["dataset"], checkpoint["tree_size"], checkpoint["root"])
    verdict.log = manifest.get("log", manifest["dataset"])
    frontier = MerkleFrontier()
    files_check = _rehash_files(dataset_dir, manifest["files"], log, frontier)
    verdict.checks.append(files_check)
    if not files_check.ok:
        return verdict
    verdict.checks.append(_root_check(frontier, checkpoint))
    verdict.checks.append(_package_check(dataset_dir, manifest))
    verdict.checks.append(_signature_check(manifest_file, manifest, publisher_key_id))
    verdict.checks.append(
        _anchor_check(verdict, manifest_digest, anchor_lookup, anchor_unavailable_reason)
    )
    return verdict


def _rehash_files(
    dataset_dir: Path, files: list[dict[str, Any]], log: LogRef, frontier: MerkleFrontier
) -> Check:
    """Re-hash every listed file's rows into ``frontier``, in leaf order; stop at the first
    file that is missing, out of place, or not what the manifest says."""
    from proofs.leaves import leaf_hashes_for_batch  # pyarrow: only at this edge

    for entry in files:
        path = dataset_dir / entry["path"]
        if frontier.size != entry["leaf_start"]:
            return Check(
                "files",
                False,
                f"{entry['path']}: starts at leaf {entry['leaf_start']}, "
                f"but the files before it hold {frontier.size} rows",
            )
        if not path.exists():
            return Check("files", False, f"{entry['path']}: missing")
        hashes = leaf_hashes_for_batch(_read_parquet(path))
        if _sha256(path) != entry["sha256"] or len(hashes) != entry["rows"]:
            return Check("files", False, _describe_file_change(log, entry, hashes))
        frontier.extend(hashes)
    return Check("files", True, f"{len(files)} files match their SHA-256 and row counts")


def _package_check(dataset_dir: Path, manifest: dict[str, Any]) -> Check:
    """The Data Package view agrees with ``files[]``; the quality report is the one hashed."""
    resources = manifest.get("resources", [])
    files = manifest["files"]
    if [r.get("path") for r in resources] != [f["path"] for f in files]:
        return Check("manifest", False, "resources[] do not list the files of files[] in order")
    for resource, entry in zip(resources, files, strict=True):
        size = (dataset_dir / entry["path"]).stat().st_size
        if resource.get("hash") != f"sha256:{entry['sha256']}" or resource.get("bytes") != size:
            return Check(
                "manifest", False, f"{entry['path']}: resource hash or bytes differ from the file"
            )
    quality = manifest.get("quality")
    if quality is None:
        return Check("manifest", True, f"{len(resources)} resources match; no quality report")
    report = dataset_dir / quality["report_path"]
    if not report.exists():
        return Check("manifest", False, f"quality report {quality['report_path']} is missing")
    if _sha256(report) != quality["report_sha256"]:
        return Check("manifest", False, f"quality report {quality['report_path']}: SHA-256 differs")
    return Check(
        "manifest",
        True,
        f"{len(resources)} resources match; quality report (score {quality['score']}) matches",
    )


def _signature_check(
    manifest_file: Path, manifest: dict[str, Any], pinned_key_id: str | None
) -> Check:
    """The publisher's Ed25519 signature over the manifest bytes, by the key the manifest names."""
    from proofs.signing import verify_signature  # cryptography: only at this edge

    path = signature_path(manifest_file)
    if not path.exists():
        return Check("signature", False, f"no signature beside the manifest ({path.name})")
    signature = json.loads(path.read_bytes())
    publisher = manifest.get("publisher") or {}
    if publisher.get("public_key") != signature.get("public_key"):
        return Check("signature", False, "signed by a key other than the manifest's publisher")
    problem = verify_signature(signature, manifest_file.read_bytes())
    if problem is not None:
        return Check("signature", False, problem)
    if pinned_key_id is not None and signature["key_id"] != pinned_key_id.lower():
        return Check(
            "signature", False, f"signed by key {signature['key_id']}, not by {pinned_key_id}"
        )
    return Check("signature", True, f"Ed25519 signature by key {signature['key_id'][:16]}… valid")


def _root_check(frontier: MerkleFrontier, checkpoint: dict[str, Any]) -> Check:
    if frontier.size != checkpoint["tree_size"]:
        return Check(
            "root", False, f"tree size {frontier.size} != manifest {checkpoint['tree_size']}"
        )
    if frontier.root().hex() != checkpoint["root"]:
        return Check(
            "root",
            False,
            f"recomputed root {frontier.root().hex()} != manifest root {checkpoint['root']}",
        )
    return Check("root", True, f"recomputed RFC 9162 root over {frontier.size} rows matches")


def _anchor_check(
    verdict: Verdict, manifest_digest: bytes, lookup: AnchorLookup | None, why_not: str
) -> Check:
    if lookup is None:
        return Check("anchor", None, f"not checked: {why_not}")
    log_id = verdict.log or verdict.dataset
    anchored = lookup(log_id, verdict.tree_size)
    if anchored is None:
        return Check(
            "anchor", False, f"no anchor on chain for {log_id} at size {verdict.tree_size}"
        )
    root, manifest_hash = anchored
    if root.hex() != verdict.root:
        return Check("anchor", False, f"anchored root {root.hex()} != manifest root {verdict.root}")
    if manifest_hash != manifest_digest:
        return Check(
            "anchor",
            False,
            f"anchored manifest hash {manifest_hash.hex()} != SHA-256 "
            f"of the manifest file {manifest_digest.hex()}",
        )
    return Check("anchor", True, "root and manifest hash match the on-chain anchor")


def _describe_file_change(ref: LogRef, entry: dict[str, Any], hashes: list[bytes]) -> str:
    """Name the first row whose leaf differs from the committed log, when the log is here."""
    head = f"{entry['path']}: SHA-256 differs from the manifest"
    if len(hashes) != entry["rows"]:
        return f"{head} ({len(hashes)} rows, manifest says {entry['rows']})"
    log = DatasetLog(ref)
    start = entry["leaf_start"]
    if not log.leaves_path.exists() or log.size < start + entry["rows"]:
        return head
    committed = log.leaf_hashes(start, start + entry["rows"])
    for row, (mine, theirs) in enumerate(zip(hashes, committed, strict=True)):
        if mine != theirs:
            return f"{head}; row {row} (leaf {start + row}) differs from the committed leaf"
    return f"{head}; every row still matches its committed leaf (file re-encoded)"


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
