"""A small published dataset with contribution tables, anchored on the in-process EVM, its
DataAsset minted: what the ``rda verify --contribution`` attack tests share. Built from the
project's pieces as ``audit_dataset`` does (no Kafka, no Beam); the publisher's side can cheat
where a test says how."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from asset_support import OpenNodes
from audit_dataset import _write_file

from market.licence_chain import DataLicences
from proofs.contribution_audit import verify_contribution
from proofs.contributions import ContributionTable, recount
from proofs.data_asset import DataAsset
from proofs.leaves import leaf_hashes_for_batch
from proofs.log import DatasetLog
from proofs.manifest import build_manifest, write_manifest
from proofs.signing import publisher_key
from proofs.verdict import Verdict
from sinks.layout import DataLayout
from streaming.assets import table_relative_path
from streaming.chain import ChainContext, open_chain
from streaming.chain_binding import publish_identity

DATASET = "probe.v1"
SCHEMA = pa.schema(
    [
        pa.field("node_id", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("rsrp_dbm", pa.float64()),
    ]
)
DESCRIBED = {
    "name": "probe", "version": "1.0", "description": "test rows", "natural_key": ["ts"],
    "fields": [
        {"name": "node_id", "type": "string"},
        {"name": "ts", "type": "timestamp[us, tz=UTC]", "required": True},
        {"name": "rsrp_dbm", "type": "double", "unit": "dBm", "minimum": -140, "maximum": -43},
    ],
}  # fmt: skip


def rows(first: int, nodes: list[str | None]) -> pa.Table:
    """One row per entry of ``nodes`` (None: a row of no node), times from ``first`` on."""
    times = [1_764_000_000_000_000 + i * 1_000_000 for i in range(first, first + len(nodes))]
    return pa.table(
        {"node_id": nodes, "ts": times, "rsrp_dbm": [-100.0] * len(nodes)}, schema=SCHEMA
    )


@dataclass
class Checkpoint:
    tree_size: int
    root: bytes
    digest: bytes
    manifest_file: Path
    table: ContributionTable


@dataclass
class ContributionWorld:
    chain: ChainContext
    data: Path
    asset: Any = None
    licences: Any = None
    nodes: Any = None
    token: int | None = None
    files: list[dict] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @property
    def dataset_dir(self) -> Path:
        return self.data / "published" / DATASET

    @property
    def accounts(self) -> list[str]:
        return self.chain.registry.w3.eth.accounts

    def publish(self, batch: pa.Table, table_size: int | None = None, anchor: bool = True):
        """One checkpoint with its table (of ``table_size``, when the publisher says another
        size than the checkpoint's), signed, and anchored unless told not to."""
        log = DatasetLog(self.dataset_dir / "log")
        self.files.append(_write_file(self.dataset_dir, len(self.files), batch, log.size))
        size, root = log.append_at(log.size, leaf_hashes_for_batch(batch))
        counted = recount(DATASET, size, [self.dataset_dir / f["path"] for f in self.files])
        table = ContributionTable(DATASET, table_size or size, dict(counted.rows_by_node))
        raw = table.to_bytes()
        relative = table_relative_path(size)
        (self.dataset_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.dataset_dir / relative).write_bytes(raw)
        manifest = self._manifest(size, root)
        manifest["contributions"] = {
            "path": relative, "sha256": hashlib.sha256(raw).hexdigest(),
            "root": table.root().hex(), "node_rows": table.node_rows,
            "nodes": len(table.rows_by_node),
        }  # fmt: skip
        if self.token is not None:
            manifest["asset"] = {
                "chain_id": self.chain.chain_id, "contract": self.asset.address,
                "token_id": self.token,
            }  # fmt: skip
        manifest_file, digest = write_manifest(self.dataset_dir, manifest, publisher_key(self.data))
        checkpoint = Checkpoint(size, root, digest, manifest_file, table)
        if anchor:
            self.chain.registry.anchor(DATASET, size, root, digest, self.latest_size())
        self.checkpoints.append(checkpoint)
        return checkpoint

    def latest_size(self) -> int:
        latest = self.chain.registry.latest(DATASET)
        return latest.tree_size if latest is not None else 0

    def _manifest(self, size: int, root: bytes) -> dict:
        previous = self.checkpoints[-1] if self.checkpoints else None
        return build_manifest(
            dataset=DATASET, tree_size=size, root=root, schema=DESCRIBED,
            fingerprint="0" * 64, files=list(self.files),
            batch={"id": len(self.files), "planned_at": "2026-11-25T00:00:00+00:00",
                   "ranges": []},
            previous=None if previous is None else {
                "tree_size": previous.tree_size, "root": previous.root.hex(),
                "manifest_sha256": previous.digest.hex(),
            },
            pipeline_version="test", publisher=publisher_key(self.data).describe(),
        )  # fmt: skip

    def mint(self, share_bps: int = 3000) -> None:
        """The DataAsset of the first checkpoint, its licences, and an open node registry."""
        w3 = self.chain.registry.w3
        first = self.checkpoints[0]
        self.nodes = OpenNodes.deploy(w3)
        self.asset = DataAsset.deploy(w3)
        self.licences = DataLicences.deploy(w3, self.asset.address, self.nodes.address)
        minted = self.asset.mint(
            self.chain.registry.address, DATASET, first.tree_size, b"\x33" * 32, share_bps,
            first.table.root(), first.table.node_rows,
        )  # fmt: skip
        self.token = int(minted.value)

    def verify(self, node: str, manifest_file: Path | None = None) -> Verdict:
        trust = self.chain.trust_root(self.data)
        asset = (DataAsset(self.chain.registry.w3, self.asset.address), self.token)
        return verify_contribution(self.dataset_dir, node, trust, manifest_file, asset)


def contribution_world(root: Path, first_batch: list[str | None]) -> ContributionWorld:
    """Checkpoint one of ``first_batch``'s rows, anchored, and the asset minted on it."""
    chain = open_chain("embedded", None, None)
    world = ContributionWorld(chain, root / "data")
    publish_identity(chain, DataLayout(world.data))
    world.publish(rows(0, first_batch))
    world.mint()
    return world
