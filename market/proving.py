"""Inclusion proof bundles for the rows a buyer's query returned (``proofs=true``).

The query runs over views that carry each row's leaf index (``rda_leaf_index``); the bundles
are built by ``proofs.bundle.build_bundles`` from the published rows as stored in the
checkpoint's Parquet files. A bundle proves the row as it was committed, so it may only go with
a row that *is* that row: every returned row is hashed as shown (RFC 8785 of its values, the
leaf encoding) and must equal its bundle's leaf hash. A computed or replaced column
(``SELECT * REPLACE (rsrp_dbm + 10 AS rsrp_dbm)``), a renamed or shifted leaf index, an extra
column: the rows are not the published ones, and the query is refused with
``proofs_need_unmodified_rows`` — never a bundle that proves another value than the one shown.
``rda verify --bundle`` and the web page's proof tab verify the bundles.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from market.assets import Asset
from market.policy import QueryRefused
from market.sandbox import LEAF_COLUMN
from proofs.bundle import anchor_section, build_bundles
from proofs.bundle_v2 import build_shard_bundles
from proofs.leaves import leaf_bytes_for_batch, leaf_hashes_for_batch
from proofs.log import LogRef
from proofs.manifest import load_manifest
from proofs.shard_log import shard_log
from sinks.layout import DataLayout

MAX_PROVEN_ROWS = 1_000
UNMODIFIED = "proofs_need_unmodified_rows"


def prove_returned_rows(table: pa.Table, assets: list[Asset]) -> tuple[pa.Table, list[dict]]:
    """The rows as shown (without the leaf index) and one bundle per row, each proving exactly
    the row beside it; a refusal when any row is not an unmodified published row."""
    leaves = check_provable(table, assets)
    asset = assets[0]
    size = asset.checkpoint.tree_size
    for number, leaf in enumerate(leaves):
        if isinstance(leaf, bool) or not isinstance(leaf, int) or not 0 <= leaf < size:
            raise QueryRefused(
                UNMODIFIED,
                f"with proofs, {LEAF_COLUMN} must be the row's own leaf index; row {number} has "
                f"{leaf!r} (the checkpoint has leaves 0…{size - 1})",
            )
    shown = table.drop_columns([LEAF_COLUMN])
    bundles = bundles_for(asset, leaves)
    try:
        hashes = leaf_hashes_for_batch(_utc(shown))
    except (ValueError, TypeError, pa.ArrowException) as error:  # a type no leaf can have
        refusal = f"with proofs, rows must be published rows ({error})"
        raise QueryRefused(UNMODIFIED, refusal) from None
    for number, (digest, bundle) in enumerate(zip(hashes, bundles, strict=True)):
        if digest.hex() != bundle["leaf_hash"]:
            raise QueryRefused(
                UNMODIFIED,
                f"with proofs, every returned row must be a published row, unchanged: row "
                f"{number} differs from leaf {bundle['leaf_index']} (a computed, replaced or "
                f"renamed column?). Use SELECT * FROM {asset.view} WHERE …, or drop proofs",
            )
    return shown, bundles


def check_provable(table: pa.Table, assets: list[Asset]) -> list[Any]:
    """The leaf index column of a result that is whole rows of one dataset, else a refusal."""
    if len(assets) != 1:
        raise QueryRefused(
            "proofs_need_one_dataset", "with proofs, query exactly one dataset (no joins)"
        )
    columns = pq.read_schema(assets[0].files[0]).names
    if LEAF_COLUMN not in table.column_names or not set(columns) <= set(table.column_names):
        raise QueryRefused(
            "proofs_need_whole_rows",
            f"with proofs, return whole published rows: SELECT * FROM {assets[0].view} WHERE …",
        )
    if table.num_rows > MAX_PROVEN_ROWS:
        raise QueryRefused(
            "too_many_rows",
            f"with proofs, at most {MAX_PROVEN_ROWS} rows per query: add a filter or LIMIT",
            413,
        )
    return table.column(LEAF_COLUMN).to_pylist()


def bundles_for(asset: Asset, leaf_indices: list[int]) -> list[dict[str, Any]]:
    """One bundle per leaf index (a row's position in the checkpoint), in the given order."""
    if asset.shards:
        return _shard_bundles(asset, leaf_indices)
    by_file: dict[int, list[int]] = {}
    for leaf in leaf_indices:
        file_no = bisect.bisect_right(asset.leaf_starts, leaf) - 1
        by_file.setdefault(file_no, []).append(leaf)
    checkpoint = asset.checkpoint
    anchor = {
        "chain_id": checkpoint.chain_id,
        "contract": checkpoint.contract,
        "anchor_tx": checkpoint.anchor_tx,
        "anchor_block": checkpoint.anchor_block,
    }
    committed = {
        "tree_size": checkpoint.tree_size,
        "root": checkpoint.root,
        "manifest_sha256": checkpoint.manifest_sha256,
    }
    log = LogRef(asset.log_id, asset.dataset_dir / "log")
    built: dict[int, dict[str, Any]] = {}
    for file_no, leaves in by_file.items():
        start = asset.leaf_starts[file_no]
        rows = pq.read_table(asset.files[file_no]).take([leaf - start for leaf in leaves])
        bundles = build_bundles(
            log, leaves, leaf_bytes_for_batch(rows), committed, anchor, asset.dataset
        )
        built.update(zip(leaves, bundles, strict=True))
    return [built[leaf] for leaf in leaf_indices]


def _shard_bundles(asset: Asset, positions: list[int]) -> list[dict[str, Any]]:
    """Version-2 bundles: each position is a leaf of one shard (the shards in the checkpoint's
    order); the shard's log is rebuilt from its leaf files once per checkpoint (``_log_cache``)."""
    offsets = list(itertools.accumulate((h["tree_size"] for h in asset.shards), initial=0))
    checkpoint = asset.checkpoint
    committed = {
        "tree_size": checkpoint.tree_size,
        "root": checkpoint.root,
        "manifest_sha256": checkpoint.manifest_sha256,
    }
    anchor = anchor_section(
        asset.dataset,
        {
            "chain_id": checkpoint.chain_id,
            "contract": checkpoint.contract,
            "anchor_tx": checkpoint.anchor_tx,
            "anchor_block": checkpoint.anchor_block,
        },
    )
    by_shard: dict[int, list[int]] = {}
    for position in positions:
        by_shard.setdefault(bisect.bisect_right(offsets, position) - 1, []).append(position)
    built: dict[int, dict[str, Any]] = {}
    for number, wanted in by_shard.items():
        head = asset.shards[number]
        manifest, _ = load_manifest(asset.dataset_dir / head["manifest_path"])
        log = shard_log(asset.dataset_dir, manifest, _log_cache(asset, head))
        local = [p - offsets[number] for p in wanted]
        start, end = offsets[number], offsets[number + 1]
        files = [  # the shard's files, as the asset lists them (its chain read once)
            {"path": path, "leaf_start": position - start}
            for path, position in zip(asset.files, asset.leaf_starts, strict=True)
            if start <= position < end
        ]
        rows = _rows(asset.dataset_dir, files, local)
        bundles = build_shard_bundles(
            log, local, rows, list(asset.shards), committed, anchor, asset.dataset
        )
        built.update(zip(wanted, bundles, strict=True))
    return [built[p] for p in positions]


def _rows(dataset_dir: Path, files: list[dict], leaves: list[int]) -> list[bytes]:
    """The leaf bytes of the given leaves of a log, read from its files as published."""
    starts = [f["leaf_start"] for f in files]
    by_file: dict[int, list[int]] = {}
    for leaf in leaves:
        by_file.setdefault(bisect.bisect_right(starts, leaf) - 1, []).append(leaf)
    found: dict[int, bytes] = {}
    for number, wanted in by_file.items():
        table = pq.read_table(dataset_dir / files[number]["path"])
        rows = table.take([leaf - starts[number] for leaf in wanted])
        found.update(zip(wanted, leaf_bytes_for_batch(rows), strict=True))
    return [found[leaf] for leaf in leaves]


def _log_cache(asset: Asset, head: dict[str, Any]) -> Path:
    """Where the shard's rebuilt log is kept (reused while its head is the same): in the data
    directory's private folder, beside the marketplace's store. It lives and goes with its data;
    a fixed name under the shared temporary folder outlived every data directory ever served
    (one per test), and another user could make it first."""
    key = hashlib.sha256(str(head["shard"]).encode()).hexdigest()[:24]
    data_dir = asset.dataset_dir.parent.parent  # <data>/published/<dataset>
    return DataLayout(data_dir).private_cache("shard-logs", asset.dataset, key)


def _utc(table: pa.Table) -> pa.Table:
    """Timestamps with any time zone as the same instants in UTC (DuckDB labels them with its
    session time zone); every other value as returned."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz not in (None, "UTC"):
            utc = pa.timestamp(field.type.unit, tz="UTC")
            table = table.set_column(index, field.with_type(utc), table.column(index).cast(utc))
    return table
