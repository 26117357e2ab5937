"""The catalog's datasets and checkpoints: registered every batch, replaced only when changed."""

from __future__ import annotations

import duckdb
import pytest

from sinks.catalog import Catalog
from sinks.layout import DataLayout

SCHEMA = {"name": "radio_kpi", "version": "1.0"}


def checkpoint(dataset: str, size: int, tx: str) -> dict:
    return {
        "dataset": dataset,
        "tree_size": size,
        "root": "aa" * 32,
        "manifest_path": f"published/{dataset}/checkpoints/{size:012d}.manifest.json",
        "manifest_sha256": "01" * 32,
        "chain_id": 31337,
        "contract": "0x" + "11" * 20,
        "anchor_tx": tx,
        "anchor_block": 7,
        "gas_used": 21_000,
    }


def test_a_dataset_registered_again_keeps_its_row_and_a_new_fingerprint_replaces_it(tmp_path):
    with Catalog(DataLayout(tmp_path)) as catalog:
        assert catalog.register_dataset("radio_kpi.v1", SCHEMA, "f1") == "radio_kpi_v1"
        assert catalog.register_dataset("radio_kpi.v1", SCHEMA, "f1") == "radio_kpi_v1"
        rows = catalog.db.execute("SELECT * FROM datasets").fetchall()
        assert rows == [("radio_kpi.v1", "radio_kpi", "1.0", "f1", "radio_kpi_v1")]
        catalog.register_dataset("radio_kpi.v1", {**SCHEMA, "version": "1.1"}, "f2")
        rows = catalog.db.execute("SELECT * FROM datasets").fetchall()
        assert rows == [("radio_kpi.v1", "radio_kpi", "1.1", "f2", "radio_kpi_v1")]


def test_a_batch_s_checkpoints_are_recorded_together_and_a_redo_replaces_them(tmp_path):
    with Catalog(DataLayout(tmp_path)) as catalog:
        catalog.record_checkpoints(
            4, [checkpoint("a.v1", 10, "0x01"), checkpoint("b.v1", 3, "0x01")]
        )
        catalog.record_checkpoints(4, [checkpoint("a.v1", 10, "0x02")])  # a redo, anchored again
        recorded = catalog.batch_checkpoints(4)
    assert [(c["dataset"], c["tree_size"], c["anchor_tx"]) for c in recorded] == [
        ("a.v1", 10, "0x02"),
        ("b.v1", 3, "0x01"),
    ]
    assert recorded[0] == {**checkpoint("a.v1", 10, "0x02"), "batch_id": 4}


def test_a_catalog_missing_a_table_of_this_version_gets_it_at_its_next_opening(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:  # as a catalog made before the table existed
        catalog.record_checkpoints(4, [checkpoint("a.v1", 10, "0x01")])
        catalog.db.execute("DROP TABLE hydrated_shards")
    with Catalog(layout) as catalog:
        assert "hydrated_shards" in catalog.tables_at_open
        catalog.mark_hydrated({"a.v1/t.p0": "ab" * 32})
        assert catalog.hydrated_heads(["a.v1/t.p0"]) == {"a.v1/t.p0": "ab" * 32}
        assert [c["tree_size"] for c in catalog.checkpoints("a.v1")] == [10]  # kept as it was


def quarantine_entry(name: str, rows: int, reasons: dict[str, int]) -> dict:
    path = f"private/quarantine/t/{name}.parquet"
    return {"path": path, "topic": "t", "partition": 0, "start": 0, "end": rows, "rows": rows,
            "reasons": reasons}  # fmt: skip


def test_a_batch_s_quarantine_files_are_registered_together_and_a_redo_replaces_them(tmp_path):
    with Catalog(DataLayout(tmp_path)) as catalog:
        first = [quarantine_entry("a", 2, {"bad_json": 2}), quarantine_entry("b", 1, {"x": 1})]
        catalog.quarantine.register(7, first)
        redo = [quarantine_entry("a", 3, {"bad_json": 3}), quarantine_entry("a", 1, {"y": 1})]
        catalog.quarantine.register(7, redo)  # a file listed twice: as listed last
        assert catalog.quarantine.paths() == [e["path"] for e in first]
        assert catalog.quarantine.batch_reasons(7) == {"x": 1, "y": 1}


def test_a_quarantine_registration_that_fails_registers_none_of_its_files(tmp_path):
    with Catalog(DataLayout(tmp_path)) as catalog:
        bad = {**quarantine_entry("b", 1, {"x": 1}), "rows": "one"}  # not a count
        with pytest.raises(duckdb.Error):
            catalog.quarantine.register(7, [quarantine_entry("a", 1, {"x": 1}), bad])
        assert catalog.quarantine.paths() == []
        catalog.quarantine.register(8, [quarantine_entry("c", 1, {"x": 1})])  # usable after
        assert catalog.quarantine.paths() == ["private/quarantine/t/c.parquet"]


def test_a_batch_with_nothing_to_record_records_nothing(tmp_path):
    with Catalog(DataLayout(tmp_path)) as catalog:
        catalog.record_checkpoints(4, [])
        catalog.quarantine.register(4, [])
        catalog.windows.record(4, [])
        catalog.register_files(4, [])
        tables = ("checkpoints", "quarantine_files", "window_quality", "files", "listed_folders")
        counts = [catalog.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
        assert counts == [0, 0, 0, 0, 0]
