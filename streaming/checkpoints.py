"""What is anchored now, read from the chain and the store: the base a batch builds on.

A worker never asks another worker what a dataset holds. It reads the registry's ``latest()``
for the dataset (a view call), then the manifest with that hash from the store: the newest
anchored dataset checkpoint, which names every shard's head. A version-1 manifest there (a
dataset published before sharding) is the dataset's own log: the legacy shard. A dataset
manifest that was anchored but not yet given its final name (its writer died in between) is
found under ``checkpoints/pending/`` by its hash, and promoted.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from proofs.anchor import Anchor
from proofs.manifest import signature_path
from proofs.manifest_v2 import checkpoint_manifest_path, pending_manifest_path
from proofs.shards import head
from sinks.storage import Store
from streaming.assets import promote_table
from streaming.chain import ChainChanged


class ChainView(Protocol):
    """What the commit step needs of the chain: anchor a batch's checkpoints, read ``latest``."""

    def __call__(self, checkpoints: list[dict]) -> list[dict]: ...

    def latest(self, log: str) -> Anchor | None: ...


def answers_at_once(chain: ChainView) -> bool:
    """Whether the chain anchors without waiting for a block: the in-process EVM, whose blocks
    are mined by the call itself (``in_process``; an anchorer without it is taken for a node)."""
    return bool(getattr(chain, "in_process", False))


def dataset_path(dataset: str, relative: str) -> str:
    """A path of the dataset folder, relative to the data directory."""
    return f"published/{dataset}/{relative}"


@dataclass
class Base:
    """A dataset's newest anchored checkpoint (or nothing yet), with its shard heads."""

    dataset: str
    size: int = 0
    root: str | None = None
    digest: str | None = None
    manifest: dict[str, Any] | None = None
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)  # shard -> head + path

    @property
    def contributions_sha256(self) -> str | None:
        """The hash of the checkpoint's contribution table, as its manifest names it."""
        return ((self.manifest or {}).get("contributions") or {}).get("sha256")

    @property
    def link(self) -> dict[str, Any] | None:
        """The ``previous`` of a checkpoint built on this one."""
        if self.digest is None:
            return None
        return {"tree_size": self.size, "root": self.root, "manifest_sha256": self.digest}


class _KnownManifests:
    """Manifests this process read or wrote, by store and the SHA-256 of their bytes: they never
    change, so a batch need not read and parse again the heads the batch before it wrote (~1-2
    ms a manifest, several per dataset and batch). The least recently used go first once their
    bytes pass ``limit`` (a dataset manifest lists every shard head; a version-2 shard manifest,
    read back from an older data directory, every file of its shard)."""

    def __init__(self, limit: int = 32 * 2**20) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[str, str], tuple[dict[str, Any], int]] = OrderedDict()
        self._size = 0

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple[str, str], manifest: dict[str, Any], size: int) -> None:
        if key in self._entries or size > self.limit:
            return
        self._entries[key] = (manifest, size)
        self._size += size
        while self._size > self.limit:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._size -= dropped


_KNOWN = _KnownManifests()


class Checkpoints:
    """Anchored checkpoints and shard manifests, read once each (they never change)."""

    def __init__(self, store: Store, chain: ChainView) -> None:
        self.store, self.chain = store, chain
        self._manifests: dict[str, dict[str, Any]] = {}  # sha256 -> manifest
        self._latest: dict[str, Anchor | None] = {}  # dataset -> the last `latest` read

    def base(self, dataset: str, fresh: bool = True) -> Base:
        """The dataset's newest anchored checkpoint. ``fresh=False`` may answer with what this
        object read last (a batch's duplicate check and its first commit attempt share one view
        call per dataset: if another worker anchored in between, the registry refuses the
        commit and its next attempt reads afresh)."""
        if fresh or dataset not in self._latest:
            self._latest[dataset] = self.chain.latest(dataset)
        latest = self._latest[dataset]
        if latest is None:
            return Base(dataset)
        digest = latest.manifest_hash.hex()
        manifest = self._anchored_manifest(dataset, latest.tree_size, digest)
        base = Base(dataset, latest.tree_size, latest.root.hex(), digest, manifest)
        if manifest.get("kind") == "dataset":
            base.heads = {h["shard"]: dict(h) for h in manifest["shards"]}
        else:  # version 1: the dataset's own log, the legacy shard of what follows
            legacy = head(dataset, latest.tree_size, latest.root.hex(), digest)
            legacy["manifest_path"] = checkpoint_manifest_path(latest.tree_size)
            base.heads = {dataset: legacy}
        return base

    def manifest(self, dataset: str, relative: str, digest: str) -> dict[str, Any]:
        """The manifest at ``relative`` (in the dataset folder) whose SHA-256 is ``digest``
        (``FileNotFoundError`` when there is none there)."""
        if digest not in self._manifests:
            path = dataset_path(dataset, relative)
            known = _KNOWN.get((self.store.uri, digest))
            if known is not None and self.store.exists(path):
                self._manifests[digest] = known
                return known
            data = self.store.read_bytes(path)
            if _sha256(data) != digest:
                raise ChainChanged(
                    f"{self.store}/{path} is not the manifest {digest[:16]}… its checkpoint names"
                )
            self.remember(digest, json.loads(data), len(data))
        return self._manifests[digest]

    def remember(self, digest: str, manifest: dict[str, Any], size: int) -> None:
        """A manifest as written (``size``: its bytes), or read: never changed afterwards."""
        self._manifests[digest] = manifest
        _KNOWN.put((self.store.uri, digest), manifest, size)

    def _anchored_manifest(self, dataset: str, size: int, digest: str) -> dict[str, Any]:
        final = checkpoint_manifest_path(size)
        try:
            return self.manifest(dataset, final, digest)
        except (FileNotFoundError, ChainChanged):
            pass
        pending = pending_manifest_path(digest)
        try:
            manifest = self.manifest(dataset, pending, digest)
        except FileNotFoundError:
            raise ChainChanged(
                f"the registry's latest checkpoint of {dataset} (size {size}, manifest "
                f"{digest[:16]}…) is not in {self.store}: the data directory is not the one "
                "anchored there, or lost files"
            ) from None
        table = (manifest.get("contributions") or {}).get("sha256")
        promote_table(self.store, dataset, size, table)  # first: the manifest names it
        promote(self.store, dataset, pending, final)
        return manifest


def promote(store: Store, dataset: str, pending: str, final: str) -> None:
    """Give an anchored dataset manifest (and its signature) its final name."""
    for source, target in ((pending, final), (_sig(pending), _sig(final))):
        try:
            data = store.read_bytes(dataset_path(dataset, source))
        except FileNotFoundError:
            continue
        store.write_bytes(dataset_path(dataset, target), data)
    for source in (pending, _sig(pending)):
        store.delete(dataset_path(dataset, source))


def _sig(relative: str) -> str:
    from pathlib import PurePosixPath

    return str(signature_path(PurePosixPath(relative)))  # type: ignore[arg-type]


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
