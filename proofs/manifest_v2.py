"""Manifests of version 2: a shard's checkpoint, and a dataset checkpoint over shard heads.

A **shard manifest** is a version-1 manifest (every field of docs/proof-format.md §7) about one
shard log (``log`` = the shard id), with ``kind`` ``"shard"`` and the shard's compact range in
``checkpoint.frontier`` (so a worker that takes a shard over continues its log from the manifest
alone). Paths stay relative to the dataset folder. Written now with ``manifest_version`` 3: its
``files[]`` and ``resources[]`` are only the files its checkpoint adds, the earlier ones its
``previous`` chain's (proofs/shard_chain.py); version 2, written before, listed every file of
the shard so far. It is stored under
a name that carries its hash, ``shards/<topic>.p<partition>/checkpoints/<size>.<sha256>
.manifest.json``: two workers racing on one shard (one of them about to lose the
compare-and-swap at the anchor) can never overwrite each other's manifest.

A **dataset manifest** (``kind`` ``"dataset"``) lists the shard heads (proofs/shards.py), with
where each shard manifest is (``manifest_path``, not part of the head), and commits to them with
``checkpoint.root``. It is written to ``checkpoints/pending/<sha256>.manifest.json`` before it is
anchored and to ``checkpoints/<size>.manifest.json`` once it is (version-1 manifests use that
name too): only an anchored dataset checkpoint ever has its size as a name.
"""

from __future__ import annotations

import hashlib
from typing import Any

from proofs.jcs import canonicalize
from proofs.manifest import CHAINED_SHARD_VERSION, SHARDED_VERSION, build_manifest
from proofs.merkle import MerkleFrontier
from proofs.schema_docs import references
from proofs.shards import heads_problem, heads_root, shard_folder, total_size

HEAD_LEAF = "RFC 8785 canonical JSON of the shard head: shard, tree_size, root"
_HEX = "0123456789abcdef"


def build_shard_manifest(*, shard: str, frontier: MerkleFrontier, **fields: Any) -> dict[str, Any]:
    """A shard's checkpoint: ``build_manifest``'s fields, about the log ``shard``; ``files``
    are those the checkpoint adds to its ``previous`` one (version 3)."""
    manifest = build_manifest(tree_size=frontier.size, root=frontier.root(), log=shard, **fields)
    manifest["manifest_version"] = CHAINED_SHARD_VERSION
    manifest["kind"] = "shard"
    manifest["checkpoint"]["frontier"] = frontier.to_dict()["hashes"]
    return manifest


def build_dataset_manifest(
    *,
    dataset: str,
    heads: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    schema: dict[str, Any],
    fingerprint: str,
    batch: dict[str, Any],
    pipeline_version: str,
    publisher: dict[str, str] | None,
    quality: dict[str, Any] | None = None,
    schema_by_reference: bool = False,
) -> dict[str, Any]:
    """A dataset checkpoint over ``heads`` (each with ``manifest_path``), ordered by shard id;
    ``schema_by_reference``: its schema named by its document (``proofs/schema_docs.py``)."""
    ordered = sorted(heads, key=lambda h: h["shard"].encode("utf-8"))
    problem = heads_problem([_head_only(h) for h in ordered], dataset)
    if problem is not None:
        raise ValueError(problem)
    manifest: dict[str, Any] = {
        "manifest_version": SHARDED_VERSION,
        "kind": "dataset",
        "name": dataset,
        "dataset": dataset,
        "log": dataset,
        "checkpoint": {
            "tree_size": total_size(ordered),
            "root": heads_root(ordered).hex(),
            "shards": len(ordered),
            "tree": "RFC 9162 SHA-256",
            "leaf": HEAD_LEAF,
        },
        "shards": [dict(h) for h in ordered],
        "previous": previous,
        "schema": {"fingerprint": fingerprint, **schema},
        "batch": batch,
        "pipeline": {"name": "rda-pipeline", "version": pipeline_version},
        "publisher": publisher,
    }
    if schema_by_reference:
        manifest["schema"] = references(schema, fingerprint)[0]
    if quality is not None:
        manifest["quality"] = quality
    return manifest


def _head_only(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("shard", "tree_size", "root", "manifest_sha256") if k in entry}


def is_dataset_manifest(manifest: Any) -> bool:
    return (
        isinstance(manifest, dict)
        and manifest.get("manifest_version") == SHARDED_VERSION
        and manifest.get("kind") == "dataset"
    )


def shard_manifest_path(shard: str, tree_size: int, digest_hex: str) -> str:
    """Where a shard manifest is stored, relative to the dataset folder."""
    folder = shard_folder(shard)
    name = f"{tree_size:012d}.{digest_hex}.manifest.json"
    return f"{folder}/checkpoints/{name}" if folder else f"checkpoints/{name}"


def pending_manifest_path(digest_hex: str) -> str:
    """A dataset manifest waiting for its anchor, relative to the dataset folder."""
    return f"checkpoints/pending/{digest_hex}.manifest.json"


def checkpoint_manifest_path(tree_size: int) -> str:
    """An anchored dataset checkpoint (any version), relative to the dataset folder."""
    return f"checkpoints/{tree_size:012d}.manifest.json"


def manifest_digest(manifest: dict[str, Any]) -> tuple[bytes, str]:
    """The manifest's stored bytes (RFC 8785) and their SHA-256 in hex."""
    data = canonicalize(manifest, shares_objects=True)  # one Table Schema in every resource
    return data, hashlib.sha256(data).hexdigest()


def dataset_manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What makes a version-2 dataset manifest unusable (types, shapes, sums), or None."""
    dataset, checkpoint = manifest.get("dataset"), manifest.get("checkpoint")
    if not isinstance(dataset, str) or not isinstance(checkpoint, dict):
        return "dataset and checkpoint are missing"
    if manifest.get("log", dataset) != dataset:
        return "a dataset checkpoint's log must be the dataset id"
    heads = manifest.get("shards")
    problem = heads_problem(
        [_head_only(h) if isinstance(h, dict) else h for h in heads]
        if isinstance(heads, list)
        else heads,
        dataset,
    )
    if problem is not None:
        return problem
    for number, entry in enumerate(heads):
        digest = entry.get("manifest_sha256")
        if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set(_HEX):
            return f"shards[{number}].manifest_sha256 must be 64 lowercase hex digits"
        if not _inside_shard(entry.get("manifest_path"), entry["shard"]):
            return f"shards[{number}].manifest_path must be a manifest in the shard's folder"
    size, count = checkpoint.get("tree_size"), checkpoint.get("shards")
    if size != total_size(heads) or count != len(heads):
        return "checkpoint.tree_size and checkpoint.shards must be the heads' total and count"
    if not isinstance(checkpoint.get("root"), str) or len(checkpoint["root"]) != 64:
        return "checkpoint.root must be 64 lowercase hex digits"
    previous = manifest.get("previous")
    if previous is not None and not (
        isinstance(previous, dict) and {"tree_size", "root", "manifest_sha256"} <= set(previous)
    ):
        return "previous must be null or {tree_size, root, manifest_sha256}"
    return None


def _inside_shard(path: Any, shard: str) -> bool:
    folder = shard_folder(shard)
    prefix = f"{folder}/checkpoints/" if folder else "checkpoints/"
    if not isinstance(path, str) or not path.startswith(prefix) or "\\" in path:
        return False
    name = path[len(prefix) :]
    return "/" not in name and ".." not in name and name.endswith(".manifest.json")
