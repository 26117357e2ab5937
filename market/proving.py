"""Inclusion proof bundles for the rows a buyer's query returned (``proofs=true``).

The query runs over views that carry each row's leaf index (``rda_leaf_index``); the bundles
are built by ``proofs.bundle.build_bundles`` from the published rows as stored in the
checkpoint's Parquet files, so a bundle always proves the row as it was committed, and the
buyer can check it against the row the query returned. ``rda verify --bundle`` and the web
page's proof tab verify them.
"""

from __future__ import annotations

import bisect
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from market.assets import Asset
from market.policy import QueryRefused
from market.sandbox import LEAF_COLUMN
from proofs.bundle import build_bundles
from proofs.leaves import leaf_bytes_for_batch
from proofs.log import LogRef

MAX_PROVEN_ROWS = 1_000


def check_provable(table: pa.Table, assets: list[Asset]) -> list[int]:
    """The leaf indices of a result that is whole rows of one dataset, else a refusal."""
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
    """One bundle per leaf index, in the given order."""
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
