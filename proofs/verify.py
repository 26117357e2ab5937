"""Auditor's verification of one dataset checkpoint.

From the published folder: every file's SHA-256 against the manifest, every row re-encoded and
re-hashed into the RFC 9162 root, the root and tree size against the manifest, the manifest's
Data Package resources and quality report, its Ed25519 signature by a key of the pinned
publisher identity, and the manifest hash and root against the anchor on the pinned registry.
The verdict names the first thing that differs: a file, a row, a root, a resource, the
signature, the identity or an anchor. ``proofs.audit`` adds the log's history and the
registry's ``latest()`` (what plain ``rda verify`` checks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proofs import quality_attestation, schema_docs
from proofs.documents import open_untrusted, parse_document
from proofs.log import DatasetLog, LogRef
from proofs.manifest import (
    latest_manifest,
    load_manifest,
    manifest_problem,
    placement_problem,
    read_document,
    signature_path,
)
from proofs.merkle import HASH_SIZE, MerkleFrontier
from proofs.shard_log import leaves_path
from proofs.trust import Pin, TrustRoot
from proofs.verdict import CHECKPOINT_CHECKS, Check, Verdict

__all__ = ["Check", "Verdict", "verify_dataset"]

# An attestation read at most this size (the generic 64 MiB bound let one of 64 MiB of empty
# "files" cost the verifier 31 s and 2.9 GB): its statement, plus a path and hash per file added.
ATTESTATION_BYTES = 64 << 10
ATTESTATION_BYTES_PER_FILE = 1 << 10


def verify_dataset(
    dataset_dir: Path,
    manifest_file: Path | None = None,
    trust: TrustRoot | None = None,
    log: LogRef | None = None,
) -> Verdict:
    """Verify the checkpoint described by ``manifest_file`` (default: the latest one).

    ``trust`` is the auditor's pinned publisher identity and the chain to read (default:
    nothing pinned, offline: the verdict can then be at best INCOMPLETE). ``log`` is where the
    committed leaves are, used only to name the first changed row of a changed file (default:
    the dataset's own log); the anchor is looked up under the manifest's ``log`` id.
    """
    trust = trust or TrustRoot(Pin())
    log = log or LogRef.for_dataset(dataset_dir)
    manifest_file = manifest_file or latest_manifest(dataset_dir)
    if manifest_file is None:
        raise FileNotFoundError(f"no checkpoint manifest under {dataset_dir / 'checkpoints'}")
    try:
        manifest, manifest_digest = load_manifest(manifest_file)
    except ValueError as error:
        manifest, manifest_digest = None, b""
        problem = f"not a manifest ({error})"
    else:
        problem = manifest_problem(manifest)
        problem = problem or placement_problem(manifest, dataset_dir, manifest_file)
    if problem is not None:
        verdict = Verdict(str(manifest_file.name), -1, "", required=CHECKPOINT_CHECKS)
        verdict.checks.append(Check("manifest", False, f"{manifest_file.name}: {problem}"))
        return verdict
    if manifest.get("kind") == "dataset":  # version 2: a checkpoint over shard heads
        from proofs.verify_v2 import verify_sharded

        return verify_sharded(dataset_dir, manifest_file, manifest, manifest_digest, trust)
    checkpoint = manifest["checkpoint"]
    verdict = Verdict(manifest["dataset"], checkpoint["tree_size"], checkpoint["root"])
    verdict.log = manifest.get("log", manifest["dataset"])
    verdict.required = CHECKPOINT_CHECKS
    identity = trust.identity_check()
    anchor, anchored = trust.anchor_check(
        verdict.log, verdict.tree_size, verdict.root, manifest_digest.hex()
    )
    anchored_at = anchored.anchored_at if anchored is not None and anchor.ok else None
    signature = signature_check(manifest_file, manifest, trust, anchored_at)
    if signature.ok is False:
        return refused_unread(verdict, signature, identity, anchor)
    frontier = MerkleFrontier()
    files_check = _rehash_files(dataset_dir, manifest["files"], log, frontier)
    verdict.checks.append(files_check)
    if not files_check.ok:
        return verdict
    verdict.checks.append(_root_check(frontier, checkpoint))
    verdict.checks.append(_package_check(dataset_dir, manifest))
    verdict.checks += [signature, identity, anchor]
    previous = (manifest.get("previous") or {}).get("tree_size", 0)
    added = {f["path"]: f["sha256"] for f in manifest["files"] if f["leaf_start"] >= previous}
    quality = attestation_check(dataset_dir, manifest, manifest_digest.hex(), added)
    if quality is not None:
        verdict.checks.append(quality)
    return verdict


def refused_unread(verdict: Verdict, signature: Check, identity: Check, anchor: Check) -> Verdict:
    """The verdict on a manifest whose signature fails, no row of it read: a planted, unsigned
    manifest listing one small file of a million rows four times had them all hashed before
    (~20 min per 10^9 rows)."""
    unread = Check("files", None, "not read: the manifest is not the publisher's")
    verdict.checks += [unread, signature, identity, anchor]
    return verdict


def _rehash_files(
    dataset_dir: Path, files: list[dict[str, Any]], log: LogRef, frontier: MerkleFrontier
) -> Check:
    """Re-hash every listed file's rows into ``frontier``, in leaf order; stop at the first
    file that is missing, out of place, or not what the manifest says.

    A file's bytes and its footer's row count are checked before its rows are read, and the
    rows are read a slice at a time: a file of the untrusted folder may hold far more rows
    than its size suggests, and never costs more memory than a slice."""
    from proofs.leaves import open_parquet, parquet_leaf_hashes  # pyarrow: only at this edge

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
        try:
            with open_parquet(path) as parquet:
                rows = parquet.metadata.num_rows
                if _sha256(path) != entry["sha256"] or rows != entry["rows"]:
                    change = _describe_file_change(dataset_dir, log, entry, parquet)
                    return Check("files", False, change)
                for hashes in parquet_leaf_hashes(parquet):
                    frontier.extend(hashes)
        except Exception as error:  # pyarrow's many error types: a damaged or hostile file
            return Check("files", False, f"{entry['path']}: unreadable ({_first_line(error)})")
        if frontier.size != entry["leaf_start"] + rows:
            read = frontier.size - entry["leaf_start"]
            return Check("files", False, f"{entry['path']}: {read} rows read, footer says {rows}")
    return Check("files", True, f"{len(files)} files match their SHA-256 and row counts")


def _package_check(
    dataset_dir: Path, manifest: dict[str, Any], schemas: dict[str, bytes | None] | None = None
) -> Check:
    """The Data Package view agrees with ``files[]``; the schema documents it names are those
    (``schemas``: the documents read already); the quality report is the one hashed."""
    resources = manifest.get("resources", [])
    files = manifest["files"]
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        return Check("manifest", False, "resources[] must be a list of objects")
    if [r.get("path") for r in resources] != [f["path"] for f in files]:
        return Check("manifest", False, "resources[] do not list the files of files[] in order")
    for resource, entry in zip(resources, files, strict=True):
        size = (dataset_dir / entry["path"]).stat().st_size
        if resource.get("hash") != f"sha256:{entry['sha256']}" or resource.get("bytes") != size:
            return Check(
                "manifest", False, f"{entry['path']}: resource hash or bytes differ from the file"
            )
    if schema_docs.by_reference(manifest):
        problem = schema_docs.reference_problem(dataset_dir, manifest, schemas)
        if problem is not None:
            return Check("manifest", False, problem)
    quality = manifest.get("quality")
    if quality is None:
        return Check("manifest", True, f"{len(resources)} resources match; no quality report")
    if isinstance(quality, dict) and not ({"report_path", "report_sha256"} & set(quality)):
        score = quality.get("score")  # a shard's: GE's report is its dataset checkpoint's
        return Check("manifest", True, f"{len(resources)} resources match; quality score {score}")
    if not isinstance(quality, dict) or not _inside(quality.get("report_path")):
        return Check("manifest", False, "quality must name a report_path inside the dataset")
    if "report_sha256" not in quality:  # GE's report comes later, with a signed attestation
        if not _inside(quality.get("attestation_path")):
            return Check("manifest", False, "quality must name an attestation_path inside it")
        pending = attestation_pending(dataset_dir, manifest)
        return Check(
            "manifest",
            True,
            f"{len(resources)} resources match; quality score {quality.get('score')}"
            + ("; GE report pending (it runs after the anchor)" if pending else ""),
        )
    report = dataset_dir / quality["report_path"]
    if not report.exists():
        return Check("manifest", False, f"quality report {quality['report_path']} is missing")
    if _sha256(report) != quality["report_sha256"]:
        return Check("manifest", False, f"quality report {quality['report_path']}: SHA-256 differs")
    return Check(
        "manifest",
        True,
        f"{len(resources)} resources match; quality report (score {quality.get('score')}) matches",
    )


def names_attestation(manifest: dict[str, Any]) -> bool:
    """Whether the manifest's quality section names a GE attestation (to come, or there)."""
    quality = manifest.get("quality")
    return isinstance(quality, dict) and "attestation_path" in quality


def attestation_pending(dataset_dir: Path, manifest: dict[str, Any]) -> bool:
    """Whether the manifest names an attestation inside the dataset that is not there yet."""
    if not names_attestation(manifest):
        return False
    relative = manifest["quality"]["attestation_path"]
    return _inside(relative) and not (dataset_dir / relative).exists()


def attestation_check(
    dataset_dir: Path, manifest: dict[str, Any], manifest_sha256: str, added: dict[str, str]
) -> Check | None:
    """GE's report, attested by the manifest's (verified) publisher key for exactly the files
    this checkpoint ``added`` (path → SHA-256); None when there is no attestation (yet)."""
    if not names_attestation(manifest):
        return None
    quality = manifest["quality"]
    if not (_inside(quality["attestation_path"]) and _inside(quality.get("report_path"))):
        return Check("quality", False, "quality must name its attestation and report inside it")
    path = dataset_dir / quality["attestation_path"]
    if not path.exists():
        return None
    report_file = dataset_dir / quality["report_path"]
    try:  # a statement and a signature, and a path and hash a file added: a few KB
        limit = ATTESTATION_BYTES + ATTESTATION_BYTES_PER_FILE * len(added)
        document = parse_document(read_document(path, limit))
        report = read_document(report_file) if report_file.exists() else None
    except ValueError as error:
        return Check("quality", False, f"{path.name}: {error}")
    problem = quality_attestation.check(
        document,
        dataset=manifest["dataset"],
        tree_size=manifest["checkpoint"]["tree_size"],
        manifest_sha256=manifest_sha256,
        added_files=added,
        report=report,
        trusted_key_id=_publisher(manifest).get("key_id"),
    )
    if problem is not None:
        return Check("quality", False, f"{path.name}: {problem}")
    said = document["statement"]["expectations"]  # the report's own statistics: checked
    outcome = f"{said['successful']} of {said['evaluated']} expectations met"
    if not said["success"]:  # authentic, and a fact about the data a buyer must see
        outcome += ": the report says FAILED"
    return Check(
        "quality",
        True,
        f"GE report on the {len(added)} added files attested by the publisher key ({outcome})",
    )


def _publisher(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's publisher object; an empty one if it has none (or something else: a
    hostile manifest's), which names no key."""
    publisher = manifest.get("publisher")
    return publisher if isinstance(publisher, dict) else {}


def signature_check(
    manifest_file: Path, manifest: dict[str, Any], trust: TrustRoot, anchored_at: int | None
) -> Check:
    """The publisher's Ed25519 signature over the manifest bytes, by the key the manifest names,
    which the pinned identity lists and lets sign at the anchor's time."""
    from proofs.signing import verify_signature  # cryptography: only at this edge

    path = signature_path(manifest_file)
    if not path.exists():
        return Check("signature", False, f"no signature beside the manifest ({path.name})")
    try:
        signature = parse_document(read_document(path))
    except ValueError as error:
        return Check("signature", False, f"{path.name} is not a signature ({error})")
    publisher = _publisher(manifest)
    if not isinstance(signature, dict) or publisher.get("public_key") != signature.get(
        "public_key"
    ):
        return Check("signature", False, "signed by a key other than the manifest's publisher")
    problem = verify_signature(signature, read_document(manifest_file))  # read whole above
    if problem is not None:
        return Check("signature", False, problem)
    key_id, pinned = signature["key_id"], trust.pin.key_id
    if pinned is not None and key_id != pinned.lower():
        return Check("signature", False, f"signed by key {key_id}, not by {pinned}")
    problem = trust.signer_problem(key_id, anchored_at)
    if problem is not None:
        return Check("signature", False, problem)
    if trust.identity is None:
        return Check(
            "signature", True, f"Ed25519 signature by key {key_id[:16]}… valid (key not pinned)"
        )
    when = (
        "at the anchor's time" if anchored_at is not None else "(validity not checked: no anchor)"
    )
    return Check(
        "signature",
        True,
        f"Ed25519 signature by key {key_id[:16]}… valid; the publisher identity lists it {when}",
    )


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


def _describe_file_change(
    dataset_dir: Path, ref: LogRef, entry: dict[str, Any], parquet: Any
) -> str:
    """Name the first row whose leaf differs from the committed one, when the log (or, for a
    shard, the file's leaf hashes) is here; ``parquet``: the file, open (``open_parquet``)."""
    from proofs.leaves import decoding_problem, parquet_leaf_hashes

    head = f"{entry['path']}: SHA-256 differs from the manifest"
    rows = parquet.metadata.num_rows
    if rows != entry["rows"]:
        return f"{head} ({rows} rows, manifest says {entry['rows']})"
    committed = _committed_leaves(dataset_dir, ref, entry)
    if committed is None:
        return head
    problem = decoding_problem(parquet.metadata)
    if problem is not None:  # the changed file could be a bomb: its rows are not compared
        return f"{head}; its rows not compared ({problem})"
    start, row = entry["leaf_start"], 0
    for hashes in parquet_leaf_hashes(parquet):
        theirs = committed(row, row + len(hashes))
        for mine, their in zip(hashes, theirs, strict=True):
            if mine != their:
                return f"{head}; row {row} (leaf {start + row}) differs from the committed leaf"
            row += 1
    return f"{head}; every row still matches its committed leaf (file re-encoded)"


def _committed_leaves(
    dataset_dir: Path, ref: LogRef, entry: dict[str, Any]
) -> Callable[[int, int], list[bytes]] | None:
    """The committed leaf hashes of the file's rows ``[first, end)``: from the log, else the
    file's leaf hashes (``<name>.leaves``) if they have its size; None when neither is here."""
    log, start, rows = DatasetLog(ref), entry["leaf_start"], entry["rows"]
    if _regular(log.leaves_path, log.frontier_path) and log.size >= start + rows:
        return lambda first, end: log.leaf_hashes(start + first, start + end)
    stored = dataset_dir / leaves_path(entry["path"])
    if not (stored.is_file() and stored.stat().st_size == HASH_SIZE * rows):
        return None  # absent, or not this file's: not read (untrusted)

    def read(first: int, end: int) -> list[bytes]:
        with stored.open("rb") as handle:
            handle.seek(first * HASH_SIZE)
            data = handle.read((end - first) * HASH_SIZE)
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

    return read


def _regular(*paths: Path) -> bool:
    """Whether every one of ``paths`` is a regular file (a pipe would block its reader)."""
    return all(path.is_file() for path in paths)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_untrusted(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inside(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and not path.startswith("/") and ".." not in path


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:200]
