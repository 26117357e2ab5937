"""Each checkpoint's contribution table is its previous one's plus the rows it adds; the
previous one is taken from this process when it made it, by the hash its manifest names."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from proofs.contributions import ContributionError, parse_table, recount, table_path
from sinks.layout import DataLayout
from streaming import assets
from streaming.assets import checkpoint_sections

DATASET = "radio_kpi.v1"


def published(layout: DataLayout, name: str, nodes: list[str | None]) -> dict:
    relative = f"published/{DATASET}/data/{name}.parquet"
    (layout.root / relative).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"node_id": pa.array(nodes, pa.string())}), layout.root / relative)
    return {"path": relative, "sha256": "00" * 32}


def test_a_table_made_here_is_not_read_back_and_the_next_one_adds_to_it(tmp_path, counting_store):
    layout, store = DataLayout(tmp_path), counting_store
    first = published(layout, "a", ["n1", "n2", None])
    made = checkpoint_sections(store, layout, DATASET, 3, 0, [first])
    type(store).reads = 0
    second = published(layout, "b", ["n2", "n3"])
    sha256 = made["contributions"]["sha256"]
    then = checkpoint_sections(store, layout, DATASET, 5, 3, [second], sha256)
    assert store.reads == 0
    table = parse_table(table_path(layout.dataset_dir(DATASET), 5).read_bytes())
    assert table.rows_by_node == {"n1": 1, "n2": 2, "n3": 1}
    assert then["contributions"]["root"] == table.root().hex()


def test_without_the_hash_the_previous_table_is_read_from_the_store(tmp_path, counting_store):
    layout, store = DataLayout(tmp_path), counting_store
    checkpoint_sections(store, layout, DATASET, 1, 0, [published(layout, "a", ["n1"])])
    type(store).reads = 0
    checkpoint_sections(store, layout, DATASET, 2, 1, [published(layout, "b", ["n1"])])
    assert store.reads == 1


def test_a_previous_table_that_is_not_the_one_its_manifest_names_is_not_built_on(
    tmp_path, counting_store
):
    layout = DataLayout(tmp_path)
    made = checkpoint_sections(
        counting_store, layout, DATASET, 1, 0, [published(layout, "a", ["n1"])]
    )
    # another worker's checkpoint of the same size, which lost the anchor, wrote its table last
    loser = checkpoint_sections(
        counting_store, layout, DATASET, 1, 0, [published(layout, "x", ["n9"])]
    )
    assert loser["contributions"]["sha256"] != made["contributions"]["sha256"]
    assets._KNOWN_TABLES.clear()  # a process that made neither
    next_one = published(layout, "b", ["n1"])
    sha256 = made["contributions"]["sha256"]
    assert checkpoint_sections(counting_store, layout, DATASET, 2, 1, [next_one], sha256) == {}


def test_a_recount_counts_each_node_s_rows_over_files_with_and_without_the_node_column(tmp_path):
    layout = DataLayout(tmp_path)
    with_nodes = published(layout, "a", ["n1", "n2", None, "n1"])
    without = layout.root / f"published/{DATASET}/data/b.parquet"
    pq.write_table(pa.table({"cell_id": pa.array([7, 8], pa.int64())}), without)
    counted = recount(DATASET, 6, [layout.root / with_nodes["path"], without])
    assert (counted.tree_size, counted.rows_by_node) == (6, {"n1": 2, "n2": 1})


def test_a_recount_refuses_node_ids_that_are_not_strings(tmp_path):
    layout = DataLayout(tmp_path)
    forged = layout.root / f"published/{DATASET}/data/forged.parquet"
    forged.parent.mkdir(parents=True)
    pq.write_table(pa.table({"node_id": pa.array([7, 7], pa.int64())}), forged)
    refused = "forged.parquet: node ids must be strings, not int64"
    with pytest.raises(ContributionError, match=re.escape(refused)):
        recount(DATASET, 2, [forged])


# -- workers sharing a store ---------------------------------------------------------------------


def worker_and_store(tmp_path, name: str):
    """A worker's own work directory and the store it shares with the others."""
    from sinks.storage import Store

    return DataLayout(tmp_path / name), Store.open(tmp_path / "store")


def store_table(store, tree_size: int) -> bytes:
    return store.read_bytes(f"published/{DATASET}/{table_path(Path(''), tree_size).as_posix()}")


def test_a_losing_checkpoint_of_the_same_size_leaves_the_winner_s_table_where_auditors_read(
    tmp_path,
):
    (winner, store), (loser, _) = worker_and_store(tmp_path, "a"), worker_and_store(tmp_path, "b")
    won = checkpoint_sections(store, winner, DATASET, 1, 0, [published(winner, "a", ["n1"])])
    lost = checkpoint_sections(store, loser, DATASET, 1, 0, [published(loser, "x", ["n9"])])
    assert lost["contributions"]["sha256"] != won["contributions"]["sha256"]
    assets.promote_table(store, DATASET, 1, won["contributions"]["sha256"])  # the anchor's
    raw = store_table(store, 1)
    assert hashlib.sha256(raw).hexdigest() == won["contributions"]["sha256"]
    assert parse_table(raw).rows_by_node == {"n1": 1}


def test_the_next_checkpoint_builds_on_the_anchored_table_after_a_lost_race(tmp_path):
    (winner, store), (loser, _) = worker_and_store(tmp_path, "a"), worker_and_store(tmp_path, "b")
    won = checkpoint_sections(store, winner, DATASET, 1, 0, [published(winner, "a", ["n1"])])
    checkpoint_sections(store, loser, DATASET, 1, 0, [published(loser, "x", ["n9"])])
    assets._KNOWN_TABLES.clear()  # the loser's retry, in a process that did not make the winner's
    sha256 = won["contributions"]["sha256"]
    retried = checkpoint_sections(
        store, loser, DATASET, 2, 1, [published(loser, "y", ["n9"])], sha256
    )
    assert retried["contributions"]["nodes"] == 2  # n1 from the winner's table, n9 added
    table = parse_table(table_path(loser.dataset_dir(DATASET), 2).read_bytes())
    assert table.rows_by_node == {"n1": 1, "n9": 1}


def test_an_anchored_table_is_found_under_its_hash_before_its_owner_promoted_it(tmp_path):
    (owner, store), (other, _) = worker_and_store(tmp_path, "a"), worker_and_store(tmp_path, "b")
    made = checkpoint_sections(store, owner, DATASET, 1, 0, [published(owner, "a", ["n1"])])
    assets._KNOWN_TABLES.clear()
    sha256 = made["contributions"]["sha256"]
    then = checkpoint_sections(store, other, DATASET, 2, 1, [published(other, "b", ["n2"])], sha256)
    assert then["contributions"]["nodes"] == 2


def test_a_promoted_table_is_moved_once_and_a_second_promotion_changes_nothing(tmp_path):
    owner, store = worker_and_store(tmp_path, "a")
    made = checkpoint_sections(store, owner, DATASET, 1, 0, [published(owner, "a", ["n1"])])
    sha256 = made["contributions"]["sha256"]
    assets.promote_table(store, DATASET, 1, sha256)
    assets.promote_table(store, DATASET, 1, sha256)  # an adopter finishing it again
    assert hashlib.sha256(store_table(store, 1)).hexdigest() == sha256
    with pytest.raises(FileNotFoundError):
        store.read_bytes(f"published/{DATASET}/{assets.pending_table_path(sha256)}")
