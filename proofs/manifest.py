"""Checkpoint manifests: what a dataset contained at one tree size, committed by one hash.

A manifest is stored as its RFC 8785 canonical JSON bytes, so the SHA-256 of the file *is* the
manifest hash that goes on chain. See docs/proof-format.md for every field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from proofs.jcs import canonicalize

MANIFEST_VERSION = 1


def build_manifest(
    *,
    dataset: str,
    tree_size: int,
    root: bytes,
    schema: dict[str, Any],
    fingerprint: str,
    files: list[dict[str, Any]],
    batch: dict[str, Any],
    previous: dict[str, Any] | None,
    pipeline_version: str,
    quality: dict[str, Any] | None = None,
    privacy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a manifest; every input must be deterministic for a given batch plan.

    ``quality`` ({report_path, report_sha256, score, …}) commits the checkpoint's quality
    report; ``privacy`` records the policy applied (key id and epochs, never the key).
    """
    if sum(f["rows"] for f in files) != tree_size:
        raise ValueError("the files' rows do not add up to the tree size")
    extras = {"quality": quality} if quality is not None else {}
    if privacy is not None:
        extras["privacy"] = privacy
    return {
        **extras,
        "manifest_version": MANIFEST_VERSION,
        "dataset": dataset,
        "checkpoint": {
            "tree_size": tree_size,
            "root": root.hex(),
            "tree": "RFC 9162 SHA-256",
            "leaf": "RFC 8785 canonical JSON of the published row",
        },
        "previous": previous,
        "schema": {"fingerprint": fingerprint, **schema},
        "files": files,
        "batch": batch,
        "pipeline": {"name": "rda-pipeline", "version": pipeline_version},
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return canonicalize(manifest)


def manifest_hash(manifest: dict[str, Any]) -> bytes:
    return hashlib.sha256(manifest_bytes(manifest)).digest()


def manifest_path(dataset_dir: Path, tree_size: int) -> Path:
    return dataset_dir / "checkpoints" / f"{tree_size:012d}.manifest.json"


def write_manifest(dataset_dir: Path, manifest: dict[str, Any]) -> tuple[Path, bytes]:
    """Write the manifest's canonical bytes; return its path and hash."""
    path = manifest_path(dataset_dir, manifest["checkpoint"]["tree_size"])
    path.parent.mkdir(parents=True, exist_ok=True)
    data = manifest_bytes(manifest)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return path, hashlib.sha256(data).digest()


def load_manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest at ``path`` and the SHA-256 of its bytes as stored."""
    data = path.read_bytes()
    return json.loads(data), hashlib.sha256(data).digest()


def latest_manifest(dataset_dir: Path) -> Path | None:
    found = sorted((dataset_dir / "checkpoints").glob("*.manifest.json"))
    return found[-1] if found else None
