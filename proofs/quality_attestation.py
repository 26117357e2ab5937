"""Quality attestations: a Great Expectations report bound to the checkpoint it validated.

Great Expectations runs after a checkpoint is anchored, in another process (the anchor never
waits for it). Its report is then bound to the checkpoint by a statement the publisher signs
with the key that signs manifests:

    {"attestation": "rda.quality-attestation.v1", "dataset": …, "tree_size": …,
     "manifest_sha256": …, "files": [{"path", "sha256"}…], "report_path": …,
     "report_sha256": …, "expectations": {"evaluated", "successful", "success"}}

``files`` are the rows the report validated: exactly the files the checkpoint added (paths
relative to the dataset folder). The attestation file is ``{"statement": …, "signature": …}``,
the signature being Ed25519 over the statement's RFC 8785 canonical bytes
(docs/proof-format.md, "Quality attestations").
"""

from __future__ import annotations

import hashlib
from typing import Any

from proofs.documents import parse_document
from proofs.jcs import canonicalize

KIND = "rda.quality-attestation.v1"
_FIELDS = (
    "attestation",
    "dataset",
    "tree_size",
    "manifest_sha256",
    "files",
    "report_path",
    "report_sha256",
    "expectations",
)


ATTESTATIONS = "quality/*.attestation.json"  # every checkpoint's, relative to the dataset folder


def attestation_name(tree_size: int) -> str:
    """The attestation's path relative to the dataset folder."""
    return f"quality/{tree_size:012d}.attestation.json"


def report_name(tree_size: int) -> str:
    """The report's path relative to the dataset folder."""
    return f"quality/{tree_size:012d}.validation.json"


def statement(
    *,
    dataset: str,
    tree_size: int,
    manifest_sha256: str,
    files: list[dict[str, str]],
    report: bytes,
    expectations: dict[str, Any],
) -> dict[str, Any]:
    """What the publisher attests: this report is GE's result on exactly these files."""
    return {
        "attestation": KIND,
        "dataset": dataset,
        "tree_size": tree_size,
        "manifest_sha256": manifest_sha256,
        "files": [{"path": f["path"], "sha256": f["sha256"]} for f in files],
        "report_path": report_name(tree_size),
        "report_sha256": hashlib.sha256(report).hexdigest(),
        "expectations": expectations,
    }


def sign(signer: Any, claim: dict[str, Any]) -> dict[str, Any]:
    """The attestation document: the statement and ``signer``'s signature over its JCS bytes.

    ``signer`` is a ``proofs.signing.PublisherKey``.
    """
    return {"statement": claim, "signature": signer.sign(canonicalize(claim))}


def check(
    document: Any,
    *,
    dataset: str,
    tree_size: int,
    manifest_sha256: str,
    added_files: dict[str, str],
    report: bytes | None,
    trusted_key_id: str | None,
) -> str | None:
    """None when ``document`` attests GE's ``report`` on the checkpoint; else what is wrong.

    ``added_files``: path → SHA-256 of the files the (verified) manifest added at this tree
    size; ``trusted_key_id``: the publisher key the manifests are signed with.
    """
    from proofs.signing import verify_signature  # cryptography: only at this edge

    if not isinstance(document, dict) or set(document) != {"statement", "signature"}:
        return "an attestation is {statement, signature}"
    claim, signature = document["statement"], document["signature"]
    if not isinstance(claim, dict) or set(claim) != set(_FIELDS) or claim["attestation"] != KIND:
        return f"the statement is not a {KIND}"
    if not isinstance(signature, dict):
        return "the signature is not an object"
    # What costs nothing first: a statement of another number of files than were added (64 MiB
    # of empty "files" took 31 s and 2.9 GB) is refused before it is canonicalized.
    files = claim["files"]
    if not isinstance(files, list) or len(files) != len(added_files):
        return "its files are not the files the checkpoint added"
    try:
        signed = canonicalize(claim)
    except ValueError as error:  # a number or string JSON has, and I-JSON not: nothing signed it
        return f"the statement has no canonical form ({error})"
    problem = verify_signature(signature, signed)
    if problem is not None:
        return problem.replace("manifest bytes", "statement")
    if trusted_key_id is None or signature.get("key_id") != trusted_key_id:
        return f"signed by key {signature.get('key_id')}, not by the manifests' publisher"
    expected = (dataset, tree_size, manifest_sha256, report_name(tree_size))
    if (claim["dataset"], claim["tree_size"], claim["manifest_sha256"], claim["report_path"]) != (
        expected
    ):
        return "it attests another checkpoint (dataset, tree size or manifest hash differ)"
    if (
        not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files)
        or {f["path"]: f.get("sha256") for f in files} != added_files
    ):
        return "its files are not the files the checkpoint added"
    if report is None:
        return f"the report {claim['report_path']} is missing"
    if hashlib.sha256(report).hexdigest() != claim["report_sha256"]:
        return f"the report {claim['report_path']}: SHA-256 differs"
    if claim["expectations"] != _summary(report):
        return "its expectations are not the report's statistics"
    return None


def _summary(report: bytes) -> dict[str, Any] | None:
    """What the report says of its expectations, as the statement summarizes it."""
    try:
        document = parse_document(report)
        statistics = document["statistics"]
        return {
            "evaluated": statistics["evaluated_expectations"],
            "successful": statistics["successful_expectations"],
            "success": document["success"],
        }
    except (ValueError, KeyError, TypeError):
        return None
