"""A small sharded dataset (manifest version 2) built with the real proof pieces, for tests.

Shard Parquet files with their leaf files, signed shard manifests, signed dataset checkpoints
over the shard heads, anchored on the in-process EVM and named as the pipeline names them —
without Kafka or Beam. ``anchor_dataset`` writes and anchors any dataset manifest (a forged one
too: the attacker in these tests is the publisher, who can anchor what it likes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from audit_dataset import DESCRIBED, rows

from proofs import schema_docs
from proofs.jcs import canonicalize
from proofs.leaves import leaf_hashes_for_batch
from proofs.manifest import SHARDED_VERSION
from proofs.manifest_v2 import (
    build_dataset_manifest,
    build_shard_manifest,
    checkpoint_manifest_path,
    manifest_digest,
    shard_manifest_path,
)
from proofs.merkle import MerkleFrontier
from proofs.shard_log import leaves_path
from proofs.shards import head, shard_folder
from proofs.signing import publisher_key
from sinks.layout import DataLayout
from streaming.chain import ChainContext
from streaming.chain_binding import publish_identity

DATASET = "probe.v1"
FINGERPRINT = hashlib.sha256(canonicalize(DESCRIBED)).hexdigest()


class Sharded:
    """A dataset's shards as published so far; ``publish`` adds one anchored checkpoint.

    Shard manifests are chained (version 3: each lists the files its checkpoint adds) and name
    their schema by its documents, as the pipeline writes them; ``chained=False`` writes them as
    version 2 did (every file so far), ``schema_by_reference=False`` with the schema inline, as
    the first chained links were."""

    def __init__(
        self,
        root: Path,
        chain: ChainContext,
        dataset: str = DATASET,
        chained: bool = True,
        schema_by_reference: bool = True,
    ) -> None:
        self.root, self.chain, self.dataset = root, chain, dataset
        self.chained = chained
        self.schema_by_reference = schema_by_reference
        self.dataset_dir = root / "published" / dataset
        self.signer = publisher_key(root)
        if chain.identity is None:
            publish_identity(chain, DataLayout(root))
        self.heads: dict[str, dict] = {}  # shard -> head with manifest_path
        self.shard_manifests: dict[str, dict] = {}
        self.checkpoints: list[dict] = []
        self._files = 0

    def publish(self, batch: dict[str, pa.Table]) -> dict:
        """``batch``: partition shard name (``t.p0``) -> its new rows. The anchored checkpoint."""
        for name, table in sorted(batch.items()):
            shard = f"{self.dataset}/{name}"
            self.heads[shard] = self._grow(shard, table)
        return self.anchor_dataset([dict(h) for h in self.heads.values()])

    def anchor_dataset(self, heads: list[dict]) -> dict:
        """Write, sign and anchor a dataset checkpoint over ``heads``; the checkpoint."""
        previous = self.checkpoints[-1] if self.checkpoints else None
        manifest = build_dataset_manifest(
            dataset=self.dataset,
            heads=heads,
            previous=None
            if previous is None
            else {k: previous[k] for k in ("tree_size", "root", "manifest_sha256")},
            schema=DESCRIBED,
            fingerprint=FINGERPRINT if self.schema_by_reference else "0" * 64,
            batch={"id": len(self.checkpoints), "planned_at": "2026-11-25T00:00:00+00:00"},
            pipeline_version="test",
            publisher=self.signer.describe(),
            schema_by_reference=self.schema_by_reference,
        )
        data, digest = manifest_digest(manifest)
        self._write(checkpoint_manifest_path(manifest["checkpoint"]["tree_size"]), data)
        checkpoint = {
            "dataset": self.dataset,
            "tree_size": manifest["checkpoint"]["tree_size"],
            "root": manifest["checkpoint"]["root"],
            "manifest_sha256": digest,
            "previous_tree_size": previous["tree_size"] if previous else 0,
            "manifest": manifest,
        }
        (anchored,) = self.chain.anchor([checkpoint])
        checkpoint.update(anchored)
        self.checkpoints.append(checkpoint)
        return checkpoint

    def forge_head(self, shard: str, change: Callable[[dict], None]) -> dict:
        """The publisher rewrites the shard's head manifest (``change`` edits it), signs it and
        anchors a dataset checkpoint naming it: the anchored checkpoint."""
        manifest = json.loads(json.dumps(self.shard_manifests[shard]))
        change(manifest)
        payload, digest = manifest_digest(manifest)
        size, root = manifest["checkpoint"]["tree_size"], manifest["checkpoint"]["root"]
        relative = shard_manifest_path(shard, size, digest)
        self._write(relative, payload)
        self.heads[shard] = {**head(shard, size, root, digest), "manifest_path": relative}
        p1 = f"{self.dataset}/t.p1"  # grown too: the registry takes only a checkpoint that grows
        self.heads[p1] = self._grow(p1, rows(900, 1))
        return self.anchor_dataset(list(self.heads.values()))

    def _grow(self, shard: str, table: pa.Table) -> dict:
        previous = self.shard_manifests.get(shard)
        frontier, files = MerkleFrontier(), []
        if previous is not None:
            frontier = MerkleFrontier.from_dict(
                {
                    "size": previous["checkpoint"]["tree_size"],
                    "hashes": previous["checkpoint"]["frontier"],
                }
            )
            files = [] if self.chained else list(previous["files"])
        path = f"{shard_folder(shard)}/data/batch-{self._files:04d}.parquet"
        self._files += 1
        target = self.dataset_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
        leaves = leaf_hashes_for_batch(table)
        (self.dataset_dir / leaves_path(path)).write_bytes(b"".join(leaves))
        data = target.read_bytes()
        files.append(
            {
                "path": path,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "rows": table.num_rows,
                "leaf_start": frontier.size,
                "source": {"topic": "t", "partition": 0, "start": 0, "end": 0},
            }
        )
        frontier.extend(leaves)
        current = self.heads.get(shard)
        by_reference = self.chained and self.schema_by_reference
        fingerprint = FINGERPRINT if by_reference else "0" * 64
        if by_reference:
            for relative, document in schema_docs.documents(DESCRIBED, fingerprint).items():
                (self.dataset_dir / relative).parent.mkdir(parents=True, exist_ok=True)
                (self.dataset_dir / relative).write_bytes(document)
        manifest = build_shard_manifest(
            shard=shard,
            frontier=frontier,
            dataset=self.dataset,
            schema=DESCRIBED,
            fingerprint=fingerprint,
            schema_by_reference=by_reference,
            files=files,
            batch={"id": self._files, "planned_at": "2026-11-25T00:00:00+00:00"},
            previous=None
            if current is None
            else {k: current[k] for k in ("tree_size", "root", "manifest_sha256")},
            pipeline_version="test",
            publisher=self.signer.describe(),
        )
        if not self.chained:
            manifest["manifest_version"] = SHARDED_VERSION
        data, digest = manifest_digest(manifest)
        relative = shard_manifest_path(shard, frontier.size, digest)
        self._write(relative, data)
        self.shard_manifests[shard] = manifest
        grown = head(shard, frontier.size, frontier.root().hex(), digest)
        return {**grown, "manifest_path": relative}

    def _write(self, relative: str, data: bytes) -> None:
        target = self.dataset_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        signature = canonicalize(self.signer.sign(data))
        target.with_name(target.name.removesuffix(".json") + ".sig.json").write_bytes(signature)


def grown_twice(root: Path, chain: ChainContext | None) -> Sharded:
    """Two anchored checkpoints: shards p0 (10 rows) and p1 (6); then p0 +5 and a new p2 (4)."""
    data = Sharded(root, chain)
    data.publish({"t.p0": rows(0, 10), "t.p1": rows(10, 6)})
    data.publish({"t.p0": rows(16, 5), "t.p2": rows(21, 4)})
    return data
