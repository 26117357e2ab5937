"""What the marketplace sells: each dataset at its latest anchored checkpoint.

Read from the pipeline's DuckDB catalog (checkpoints with their anchor transaction) and the
checkpoint manifest it names (schema with units, the exact Parquet files in leaf order, and
a quality report when the pipeline wrote one). Buyers only ever see the files of an anchored
checkpoint: rows landed after it are not on sale until they are anchored too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from proofs import schema_docs
from proofs.manifest import load_manifest
from proofs.shard_chain import ChainMemo
from proofs.shard_log import dataset_files
from sinks.layout import DataLayout

_VIEW_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class CatalogUnavailable(RuntimeError):
    """The pipeline's catalog is missing or locked by a writer."""


# The shards' files as last loaded: a reload after a batch reads only the manifests it added
_CHAINS = ChainMemo()


@dataclass(frozen=True)
class Checkpoint:
    dataset: str
    tree_size: int
    root: str
    anchor_tx: str | None
    anchor_block: int | None
    chain_id: int | None
    contract: str | None
    manifest_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Asset:
    dataset: str
    view: str
    checkpoint: Checkpoint
    schema: dict[str, Any]
    files: tuple[Path, ...]  # absolute, in leaf order
    leaf_starts: tuple[int, ...]
    quality: dict[str, Any] | None  # the manifest's section: score, report_path, report_sha256…
    manifest_path: Path
    log_id: str  # the Merkle log the checkpoint commits (its directory: <dataset>/log)
    # A checkpoint over shards (manifest version 2): its shard heads, in its order, each with
    # ``manifest_path``; a row's position (``leaf_starts``) counts the shards before it.
    shards: tuple[dict[str, Any], ...] = ()
    # Per file (in ``files``' order): its log, its path in the dataset folder, its SHA-256 and
    # its first row's leaf in its log, as the checkpoint lists them (what
    # ``market/compaction.py`` needs to copy files it may trust).
    file_ids: tuple[tuple[str, str, str, int], ...] = ()

    @property
    def dataset_dir(self) -> Path:
        return self.manifest_path.parent.parent


def load_assets(data_dir: Path) -> dict[str, Asset]:
    """Every dataset with an anchored checkpoint, keyed by dataset id."""
    layout = DataLayout(data_dir)
    if not layout.catalog.exists():
        rows = _published_rows(layout)  # a data directory shared by workers: no catalog of its own
        if not rows:
            raise CatalogUnavailable(f"no catalog at {layout.catalog}: run the pipeline first")
        return {row[0]: _asset(layout, row) for row in rows}
    try:
        con = duckdb.connect(str(layout.catalog), read_only=True)
    except duckdb.Error as error:  # most often: the driver holds the write lock
        raise CatalogUnavailable(f"cannot open {layout.catalog}: {error}") from None
    with con:
        rows = con.execute(
            "SELECT d.dataset, d.view_name, c.tree_size, c.root, c.anchor_tx, c.anchor_block, "
            "c.chain_id, c.contract, c.manifest_sha256, c.manifest_path "
            "FROM datasets d JOIN checkpoints c USING (dataset) "
            "WHERE c.anchor_tx IS NOT NULL "
            "QUALIFY row_number() OVER (PARTITION BY d.dataset ORDER BY c.tree_size DESC) = 1 "
            "ORDER BY d.dataset"
        ).fetchall()
    return {row[0]: _asset(layout, row) for row in rows}


def _published_rows(layout: DataLayout) -> list[tuple]:
    """The catalog's rows, read from the published side instead: each dataset's newest anchored
    checkpoint (``checkpoints/<size>.manifest.json`` with its ``<size>.anchor.json``). Every
    value is checked against the chain before anything is shown as verified."""
    rows = []
    for dataset_dir in sorted(p for p in layout.published.glob("*") if p.is_dir()):
        anchored = sorted(dataset_dir.glob("checkpoints/[0-9]*.anchor.json"))
        if not anchored:
            continue
        sidecar, size = anchored[-1], int(anchored[-1].name.split(".")[0])
        manifest_path = sidecar.with_name(f"{size:012d}.manifest.json")
        try:
            anchor = json.loads(sidecar.read_text())
            manifest, digest = load_manifest(manifest_path)
        except (OSError, ValueError) as error:
            raise CatalogUnavailable(f"checkpoint {manifest_path} is unreadable: {error}") from None
        dataset = dataset_dir.name
        rows.append(
            (dataset, dataset.replace(".", "_"), size, manifest["checkpoint"]["root"],
             anchor.get("anchor_tx"), anchor.get("anchor_block"), anchor.get("chain_id"),
             anchor.get("contract"), digest.hex(), layout.relative(manifest_path))
        )  # fmt: skip
    return rows


def _asset(layout: DataLayout, row: tuple) -> Asset:
    dataset, view, size, root, tx, block, chain_id, contract, manifest_sha, manifest_rel = row
    if not _VIEW_NAME.match(view):  # view names become SQL identifiers
        raise CatalogUnavailable(f"dataset {dataset!r} has an unusable view name {view!r}")
    path = layout.root / manifest_rel
    try:
        manifest, _digest = load_manifest(path)
    except (OSError, ValueError) as error:
        raise CatalogUnavailable(f"checkpoint manifest {path} is unreadable: {error}") from None
    dataset_dir = layout.dataset_dir(dataset)
    try:
        files = dataset_files(dataset_dir, manifest, _CHAINS)
    except (OSError, ValueError) as error:
        raise CatalogUnavailable(f"checkpoint {path} lists unreadable shards: {error}") from None
    try:
        schema = schema_docs.resolved(dataset_dir, manifest)
    except (OSError, ValueError) as error:
        raise CatalogUnavailable(f"checkpoint {path} names an unusable schema: {error}") from None
    return Asset(
        dataset=dataset,
        view=view,
        checkpoint=Checkpoint(dataset, size, root, tx, block, chain_id, contract, manifest_sha),
        schema=schema,
        files=tuple((dataset_dir / f.entry["path"]).resolve() for f in files),
        leaf_starts=tuple(f.position for f in files),
        quality=manifest.get("quality"),
        manifest_path=path,
        log_id=manifest.get("log", dataset),
        shards=tuple(manifest.get("shards", ())),
        file_ids=tuple(
            (f.log, f.entry["path"], f.entry["sha256"], int(f.entry["leaf_start"])) for f in files
        ),
    )


def read_quality_report(asset: Asset) -> dict[str, Any] | None:
    """The quality report (Great Expectations validation JSON) the manifest names, if any."""
    if not asset.quality or not asset.quality.get("report_path"):
        return None
    report_file = asset.dataset_dir / asset.quality["report_path"]
    return json.loads(report_file.read_text()) if report_file.is_file() else None
