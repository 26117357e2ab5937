"""Each checkpoint's contribution table is its previous one's plus the rows it adds; the
previous one is taken from this process when it made it, by the hash its manifest names."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from proofs.contributions import parse_table, recount, table_path
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
