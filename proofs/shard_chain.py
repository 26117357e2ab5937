"""A shard's files across its chain of manifests (shard manifest version 3).

A shard manifest of version 3 lists in ``files[]`` and ``resources[]`` only the files its own
checkpoint adds; the shard's earlier files are those of the manifest its ``previous`` names by
hash, and so on back to the shard's first manifest (``previous`` null, files from leaf 0) or to
a version-2 manifest (which lists every file of the shard so far). A stream then writes, hashes
and signs what a batch adds, not the shard's whole history again: its manifests' bytes grow
with its rows, not with the square of its batches (docs/proof-format.md §12).

Each link is found at the path its hash gives (``shard_manifest_path``) and must hash to the
``manifest_sha256`` its successor names: the head's hash (in the dataset checkpoint, anchored)
binds the whole chain. Every link must add at least one row, so a chain is never longer than
its shard has rows. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proofs.manifest import CHAINED_SHARD_VERSION, link_shape
from proofs.manifest_v2 import shard_manifest_path

# (path relative to the dataset folder, SHA-256 hex it must have) -> the manifest there.
# ``FileNotFoundError``/``OSError`` when it is missing, ``ValueError`` when it is not that one.
LoadManifest = Callable[[str, str], dict[str, Any]]


def is_chained(manifest: dict[str, Any]) -> bool:
    """Whether a shard manifest lists only the files its checkpoint adds (version 3)."""
    return manifest.get("manifest_version") == CHAINED_SHARD_VERSION


def listed_from(manifest: dict[str, Any]) -> int:
    """The first leaf a shard manifest lists: its ``previous`` checkpoint's size for a chained
    one (version 3), else 0 (a version-2 or version-1 manifest lists its whole log)."""
    previous = manifest.get("previous")
    if not is_chained(manifest) or previous is None:
        return 0
    if not link_shape(previous):
        raise ValueError("previous must be null or {tree_size, root, manifest_sha256}")
    return previous["tree_size"]


def chain_shape_problem(manifest: dict[str, Any]) -> str | None:
    """What makes a version-3 manifest's own listing unusable as a link (the shapes
    ``manifest_problem`` checks for every manifest are already checked), or None."""
    previous, files = manifest.get("previous"), manifest["files"]
    if previous is not None and not link_shape(previous):
        return "previous must be null or {tree_size, root, manifest_sha256}"
    start = 0 if previous is None else previous["tree_size"]
    if not files or files[0]["leaf_start"] != start:
        return f"files[] must list the checkpoint's added files, the first at leaf {start}"
    if manifest["checkpoint"]["tree_size"] <= start:
        return "a chained shard checkpoint must add rows to its previous one"
    return None


def chain(
    shard: str, manifest: dict[str, Any], load: LoadManifest, since: int = 0
) -> list[dict[str, Any]]:
    """The shard's manifests whose files hold its leaves from ``since`` up to ``manifest``'s
    checkpoint, oldest first, ``manifest`` last. Each older link is read with ``load`` and must
    be the checkpoint its successor's ``previous`` names (``ValueError`` otherwise)."""
    links = [manifest]
    while listed_from(links[-1]) > since:
        links.append(earlier(shard, links[-1], load))
    return links[::-1]


def earlier(shard: str, manifest: dict[str, Any], load: LoadManifest) -> dict[str, Any]:
    """The manifest a chained one's ``previous`` names (it lists the files before the first
    ``manifest`` lists: ``listed_from(manifest) > 0``), checked as its link."""
    link = manifest["previous"]
    path = shard_manifest_path(shard, link["tree_size"], link["manifest_sha256"])
    older = load(path, link["manifest_sha256"])
    problem = link_problem(shard, manifest, older)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    return older


def back_to(
    shard: str, manifest: dict[str, Any], load: LoadManifest, digest: str | None
) -> list[dict[str, Any]]:
    """The shard's manifests from ``manifest`` back to the one whose SHA-256 is ``digest``
    (excluded), or to the chain's start when that one is not on it, newest first: the last one
    lists from leaf 0 (``listed_from``) unless the walk stopped at ``digest``."""
    links = [manifest]
    while listed_from(links[-1]) > 0 and links[-1]["previous"]["manifest_sha256"] != digest:
        links.append(earlier(shard, links[-1], load))
    return links


def link_problem(shard: str, newer: dict[str, Any], older: dict[str, Any]) -> str | None:
    """Why ``older`` cannot be the checkpoint ``newer``'s ``previous`` names, or None."""
    from proofs.manifest import manifest_problem

    problem = manifest_problem(older)
    if problem is not None:
        return problem
    if older.get("kind") == "dataset" or older.get("log") != shard:
        return f"it is not a manifest of {shard}"
    if older.get("dataset") != newer.get("dataset"):
        return f"it is a manifest of {older.get('dataset')}, not of {newer.get('dataset')}"
    checkpoint, link = older["checkpoint"], newer["previous"]
    if (checkpoint["tree_size"], checkpoint["root"]) != (link["tree_size"], link["root"]):
        return "its size and root are not those its successor names"
    return None


def chain_files(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``files[]`` entries of a chain (``chain``'s result), in leaf order."""
    return [entry for link in links for entry in link["files"]]


def shard_files(
    shard: str, manifest: dict[str, Any], load: LoadManifest, since: int = 0
) -> list[dict[str, Any]]:
    """Every ``files[]`` entry of the shard at ``manifest``'s checkpoint that holds leaves from
    ``since`` on, in leaf order (its earlier files through the chain)."""
    files = chain_files(chain(shard, manifest, load, since))
    return [f for f in files if f["leaf_start"] >= since or f["leaf_start"] + f["rows"] > since]


class ChainMemo:
    """Each shard's files at the head last read through it, so that reading a later head of the
    same shard walks only the links added since (manifests are named by their hash and never
    change). For readers that read a growing shard again and again — the market reloads its
    assets after every batch; a verifier reads every link itself."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], tuple[str, list[dict[str, Any]]]] = {}

    def shard_files(
        self, where: str, shard: str, digest: str, manifest: dict[str, Any], load: LoadManifest
    ) -> list[dict[str, Any]]:
        """``shard_files(shard, manifest, load)`` for the manifest whose SHA-256 is ``digest``,
        of the dataset folder ``where``."""
        known, known_files = self._latest.get((where, shard), (None, []))
        if digest == known:
            return known_files
        links = back_to(shard, manifest, load, known)
        before = known_files if listed_from(links[-1]) > 0 else []  # stopped at the known one
        files = before + chain_files(links[::-1])
        self._latest[(where, shard)] = (digest, files)
        return files
