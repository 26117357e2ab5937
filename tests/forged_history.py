"""Unsigned, unanchored checkpoints an outsider plants in a dataset folder, for history tests.

The forgery is self-consistent where that is cheap: each planted dataset checkpoint names the
one before it, its heads hash to its root, each head names a shard manifest by its real hash,
and a shard's leaf files hold exactly 32 bytes per row it claims. The leaf files are sparse (no
disk used) and all zero, so the roots of a shard that claims 2^k rows are computed in k hashes,
yet a verifier that rebuilt the shard's log from them would read and write gigabytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from proofs.jcs import canonicalize
from proofs.merkle import HASH_SIZE
from proofs.shards import head, heads_root

FORGED_TOPIC = "zz"  # its shard sorts after every genuine one (heads are ordered by id)


def zero_root(size: int) -> str:
    """The RFC 9162 root of ``size`` (a power of two) all-zero leaf hashes."""
    node = bytes(HASH_SIZE)
    while size > 1:
        node, size = hashlib.sha256(b"\x01" + node + node).digest(), size // 2
    return node.hex()


def sparse_file(path: Path, size: int) -> None:
    """``size`` zero bytes that take no disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def write_document(folder: Path, relative: str, document: dict[str, Any]) -> str:
    """Write ``document`` (RFC 8785) at ``relative``; the SHA-256 hex of its bytes."""
    data = canonicalize(document)
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    (folder / relative).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def plant_growing_shard(
    folder: Path, dataset: str, base: dict[str, Any], base_sha256: str, half: int
) -> list[Path]:
    """Two dataset checkpoints after ``base`` (the folder's newest manifest, either version;
    ``base_sha256`` its hash): a new shard of ``half`` rows, then of ``2 * half`` (``half`` a
    power of two) — a step whose consistency proof rebuilds the shard's log from its leaves.
    The planted manifests' paths, oldest first."""
    shard = f"{dataset}/{FORGED_TOPIC}.p0"
    heads = base.get("shards") or [
        {**head(dataset, *_state(base), base_sha256), "manifest_path": _v1_path(base)}
    ]
    previous = {
        "tree_size": _state(base)[0],
        "root": _state(base)[1],
        "manifest_sha256": base_sha256,
    }
    files, planted = [], []
    for number, size in enumerate((half, 2 * half)):
        files.append(_forged_file(folder, number, half))
        shard_manifest = {
            "manifest_version": 2, "kind": "shard", "dataset": dataset, "log": shard,
            "checkpoint": {"tree_size": size, "root": zero_root(size)},
            "previous": None, "files": list(files),
        }  # fmt: skip
        relative = f"shards/{FORGED_TOPIC}.p0/checkpoints/{number}.manifest.json"
        digest = write_document(folder, relative, shard_manifest)
        forged = {**head(shard, size, zero_root(size), digest), "manifest_path": relative}
        listed = [*heads, forged]
        total = previous["tree_size"] + (size if number == 0 else half)
        manifest = {
            "manifest_version": 2, "kind": "dataset", "dataset": dataset, "log": dataset,
            "checkpoint": {"tree_size": total, "shards": len(listed),
                           "root": heads_root(listed).hex()},
            "shards": listed, "previous": previous,
        }  # fmt: skip
        relative = f"checkpoints/{total:012d}.manifest.json"
        previous = {
            "tree_size": total,
            "root": manifest["checkpoint"]["root"],
            "manifest_sha256": write_document(folder, relative, manifest),
        }
        planted.append(folder / relative)
    return planted


def forged_paths(folder: Path) -> list[Path]:
    """Every file of the forged shard (its Parquet files and leaf files)."""
    return sorted((folder / "shards" / f"{FORGED_TOPIC}.p0" / "data").iterdir())


def _forged_file(folder: Path, number: int, rows: int) -> dict[str, Any]:
    """A 4-byte "Parquet" file beside a sparse leaf file of ``rows`` zero leaf hashes."""
    relative = f"shards/{FORGED_TOPIC}.p0/data/f{number}.parquet"
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    (folder / relative).write_bytes(b"PAR1")
    sparse_file(folder / relative.replace(".parquet", ".leaves"), rows * HASH_SIZE)
    return {
        "path": relative, "sha256": hashlib.sha256(b"PAR1").hexdigest(), "bytes": 4,
        "rows": rows, "leaf_start": number * rows,
    }  # fmt: skip


def _state(manifest: dict[str, Any]) -> tuple[int, str]:
    return manifest["checkpoint"]["tree_size"], manifest["checkpoint"]["root"]


def _v1_path(manifest: dict[str, Any]) -> str:
    return f"checkpoints/{manifest['checkpoint']['tree_size']:012d}.manifest.json"
