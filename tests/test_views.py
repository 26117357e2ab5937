"""The catalog's views: made once, they show each file as the catalog lists it, and no other."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.records import QUARANTINE_SCHEMA
from sinks.catalog import Catalog
from sinks.layout import DataLayout

DATASET, VIEW = "radio_kpi.v1", "radio_kpi_v1"


def publish(
    layout: DataLayout, name: str, offsets: list[int], partition: int = 0, **extra: list
) -> dict:
    """A published file of ``DATASET`` (its ``files`` entry, not registered yet)."""
    path = layout.shard_dir(DATASET, "t", partition) / "data" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"source_offset": offsets, **extra}), path)
    entry = {"path": layout.relative(path), "dataset": DATASET, "sha256": "", "rows": len(offsets)}
    return entry | {"leaf_start": offsets[0], "topic": "t", "partition": 0, "start": 0, "end": 1}


def offsets(catalog: Catalog) -> list[int]:
    query = f"SELECT source_offset FROM {VIEW} ORDER BY 1"
    return [offset for (offset,) in catalog.db.execute(query).fetchall()]


def view_oid(catalog: Catalog) -> int:
    query = "SELECT view_oid FROM duckdb_views() WHERE view_name = ? AND NOT internal"
    return catalog.db.execute(query, [VIEW]).fetchone()[0]


def registered(catalog: Catalog, batch_id: int, *entries: dict) -> None:
    catalog.register_dataset(DATASET, {"name": "radio_kpi", "version": "1.1"}, "f")
    catalog.register_files(batch_id, list(entries))
    catalog.refresh_views({DATASET})


def test_a_file_listed_after_the_view_was_made_is_in_it_without_making_it_again(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0, 1]))
        made = view_oid(catalog)
        catalog.register_files(2, [publish(layout, "b", [2])])
        assert offsets(catalog) == [0, 1, 2]
        catalog.refresh_views({DATASET})
        assert view_oid(catalog) == made


def test_a_file_in_a_new_folder_is_in_the_view_once_listed_and_refreshed(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]))
        registered(catalog, 2, publish(layout, "b", [1], partition=3))  # a new partition's shard
        assert offsets(catalog) == [0, 1]


def test_files_in_a_symlinked_folder_are_in_the_view(tmp_path):
    layout = DataLayout(tmp_path / "data")
    elsewhere = tmp_path / "other-disk"
    elsewhere.mkdir()
    layout.dataset_dir(DATASET).mkdir(parents=True)
    (layout.dataset_dir(DATASET) / "shards").symlink_to(elsewhere)  # a shard folder on a disk
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]), publish(layout, "b", [1], partition=1))
        assert offsets(catalog) == [0, 1]


def test_a_view_that_cannot_be_made_is_left_as_it_was_and_nothing_fails(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="rda.catalog")  # whatever `rda` set the root to
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        entry = publish(layout, "a", [0])
        (layout.root / entry["path"]).unlink()  # listed, then gone from the disk
        registered(catalog, 1, entry)
        views = catalog.db.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal")
        assert views.fetchall() == []
    assert f"the catalog view {VIEW} is not made again" in caplog.text


def test_a_published_file_the_catalog_does_not_list_is_not_in_the_view(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]))
        publish(layout, "b", [1])  # published, its batch not anchored (nor registered) yet
        assert offsets(catalog) == [0]


def test_files_with_a_later_column_read_by_name_beside_older_ones(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]))
        catalog.register_files(2, [publish(layout, "b", [1], band=["B3"])])
        found = catalog.db.execute(f"SELECT band FROM {VIEW} ORDER BY source_offset").fetchall()
    assert found == [(None,), ("B3",)]


def test_a_dataset_with_no_listed_file_has_no_view_yet(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        publish(layout, "a", [0])
        catalog.register_dataset(DATASET, {"name": "radio_kpi", "version": "1.1"}, "f")
        catalog.refresh_views()
        views = catalog.db.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal")
        assert views.fetchall() == []


def test_a_view_dropped_by_hand_is_made_again(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]))
        catalog.db.execute(f"DROP VIEW {VIEW}")
        catalog.refresh_views({DATASET})
        assert offsets(catalog) == [0]


def test_a_closed_catalog_s_view_is_read_by_another_connection_read_only(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]), publish(layout, "b", [1]))
    with duckdb.connect(str(layout.catalog), read_only=True) as reader:
        assert reader.execute(f"SELECT count(*) FROM {VIEW}").fetchone() == (2,)


def test_a_data_directory_a_glob_would_misread_lists_its_files_and_keeps_them_current(
    tmp_path: Path,
):
    layout = DataLayout(tmp_path / "data[1]")  # "[1]" in a glob is a character class
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]))
        registered(catalog, 2, publish(layout, "b", [1]))
        assert offsets(catalog) == [0, 1]


def test_the_quarantine_view_shows_files_as_they_are_listed(tmp_path):
    layout = DataLayout(tmp_path)

    def quarantined(name: str, offset: int) -> dict:
        path = layout.quarantine_file("t", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {"topic": ["t"], "partition": [0], "offset": [offset], "timestamp_ms": [0]}
        row |= {"key": [None], "value": [b"{"], "format": [None], "signature": [None]}
        row |= {"reason_code": ["bad_json"], "reason": ["not JSON"]}
        pq.write_table(pa.table(row, QUARANTINE_SCHEMA), path)
        entry = {"path": layout.relative(path), "topic": "t", "partition": 0, "rows": 1}
        return entry | {"start": offset, "end": offset + 1, "reasons": {"bad_json": 1}}

    with Catalog(layout) as catalog:
        catalog.quarantine.register(1, [quarantined("a", 0)])
        catalog.quarantine.refresh_view()
        catalog.quarantine.register(2, [quarantined("b", 1)])
        quarantined("c", 2)  # written, not registered
        found = catalog.db.execute('SELECT "offset" FROM quarantine ORDER BY 1').fetchall()
    assert found == [(0,), (1,)]


def test_each_listing_notes_a_folder_once_and_a_new_folder_when_a_file_is_there(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        registered(catalog, 1, publish(layout, "a", [0]), publish(layout, "b", [1]))
        registered(catalog, 2, publish(layout, "c", [2]), publish(layout, "d", [3], partition=1))
        folders = catalog.db.execute(
            "SELECT listing, folder FROM listed_folders ORDER BY ALL"
        ).fetchall()
        shards = [layout.relative(layout.shard_dir(DATASET, "t", p) / "data") for p in (0, 1)]
        assert folders == [(DATASET, shards[0]), (DATASET, shards[1])]
        assert offsets(catalog) == [0, 1, 2, 3]
