"""Schema evolution: a new optional field is a minor version readable beside the old; anything
breaking is a new major, which is a new dataset, so a dataset never mixes majors."""

from __future__ import annotations

import dataclasses

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from schemas.model import Field
from schemas.published import published_schema_for_dataset
from schemas.radio import RADIO_KPI_V1
from schemas.registry import all_datasets, get_schema, schema_for_dataset
from schemas.service import SPEED_TEST_V1, SPEED_TEST_V2
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from validators.rowchecks import check_rows

ADDED_IN_1_1 = ("band", "prb_utilization_pct")
RADIO_1_0 = dataclasses.replace(
    RADIO_KPI_V1,
    minor=0,
    fields=tuple(f for f in RADIO_KPI_V1.fields if f.name not in ADDED_IN_1_1),
)


def row(schema, **values) -> pa.Table:
    base = {
        "node_id": "an-1",
        "event_time": 1_764_000_000_000_000,
        "cell_id": 5,
        "rsrp_dbm": -90.0,
        "connected_ues": 3,
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 1,
        "ingest_time": 1_764_000_000_000_000,
    }
    columns = {f.name: [{**base, **values}.get(f.name)] for f in schema.all_fields}
    return pa.Table.from_pydict(columns, schema=schema.arrow_schema())


def test_radio_1_1_only_added_optional_fields_so_it_reads_beside_1_0():
    assert RADIO_KPI_V1.reads_beside(RADIO_1_0)
    assert not RADIO_1_0.reads_beside(RADIO_KPI_V1)  # an older minor cannot hold newer rows
    assert RADIO_KPI_V1.dataset == RADIO_1_0.dataset == "radio_kpi.v1"
    assert RADIO_KPI_V1.fingerprint() != RADIO_1_0.fingerprint()


@pytest.mark.parametrize(
    "breaking",
    [
        lambda fields: fields[1:],  # a field removed
        lambda fields: (*fields, Field("azimuth_deg", pa.float64(), "antenna", required=True)),
        lambda fields: tuple(
            dataclasses.replace(f, type=pa.int32()) if f.name == "rsrp_dbm" else f for f in fields
        ),
        lambda fields: tuple(
            dataclasses.replace(f, required=True) if f.name == "pci" else f for f in fields
        ),
    ],
    ids=["removed", "new_required", "type_changed", "newly_required"],
)
def test_breaking_changes_cannot_be_a_minor_version(breaking):
    changed = dataclasses.replace(RADIO_KPI_V1, minor=2, fields=breaking(RADIO_KPI_V1.fields))
    assert not changed.reads_beside(RADIO_KPI_V1)


def test_a_new_major_is_a_new_dataset_and_a_dataset_id_names_one_major():
    v2 = dataclasses.replace(RADIO_KPI_V1, major=2, minor=0)
    assert v2.dataset == "radio_kpi.v2" != RADIO_KPI_V1.dataset
    assert not v2.reads_beside(RADIO_KPI_V1)
    with pytest.raises(KeyError, match="is not of radio_kpi v1"):
        schema_for_dataset("radio_kpi.v2")


def test_files_of_both_minors_read_together_with_nulls_for_the_new_fields(tmp_path):
    pq.write_table(row(RADIO_1_0), tmp_path / "a-1.0.parquet")
    pq.write_table(row(RADIO_KPI_V1, band="B3", source_offset=2), tmp_path / "b-1.1.parquet")
    table = pads.dataset(tmp_path, schema=RADIO_KPI_V1.arrow_schema()).to_table()
    assert table.sort_by("source_offset").column("band").to_pylist() == [None, "B3"]
    listing = str(tmp_path / "*.parquet")
    with duckdb.connect() as db:  # its own connection, not the process-wide default one
        found = db.execute(
            f"SELECT band FROM read_parquet('{listing}', union_by_name = true) "
            "ORDER BY source_offset"
        ).fetchall()
    assert found == [(None,), ("B3",)]


def test_the_catalog_view_of_a_dataset_reads_both_minors_by_column_name(tmp_path):
    layout = DataLayout(tmp_path)
    files = {
        "a-1.0.parquet": row(RADIO_1_0, source_offset=0),
        "b-1.1.parquet": row(RADIO_KPI_V1, band="B3", source_offset=1),
    }
    with Catalog(layout) as catalog:
        view = catalog.register_dataset(
            RADIO_KPI_V1.dataset, RADIO_KPI_V1.describe(), RADIO_KPI_V1.fingerprint()
        )
        for offset, (name, table) in enumerate(files.items()):
            path = layout.dataset_dir(RADIO_KPI_V1.dataset) / "data" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            entry = {"path": layout.relative(path), "dataset": RADIO_KPI_V1.dataset, "rows": 1}
            entry |= {"sha256": "", "leaf_start": offset, "topic": "t", "partition": 0}
            catalog.register_files(1, [entry | {"start": offset, "end": offset + 1}])
        catalog.refresh_views()
        found = catalog.db.execute(
            f'SELECT band, rsrp_dbm FROM "{view}" ORDER BY source_offset'
        ).fetchall()
    assert found == [(None, -90.0), ("B3", -90.0)]


def speed_rows(schema, **values) -> pa.Table:
    base = {"node_id": "an-1", "source": "rda.node", "test_id": "an-1/1", "download_mbps": 50.0}
    base |= {"upload_mbps": 10.0, "latency_ms": 20.0, "event_time": 1_764_000_000_000_000}
    base |= {"source_topic": "t", "source_partition": 0, "source_offset": 0}
    base |= {"ingest_time": 1_764_000_000_000_000}
    columns = {f.name: [{**base, **values}.get(f.name)] for f in schema.all_fields}
    return pa.Table.from_pydict(columns, schema=schema.arrow_schema())


def test_speed_test_2_is_a_new_major_and_1_stays_registered_beside_it():
    assert not SPEED_TEST_V2.reads_beside(SPEED_TEST_V1)  # a new key, optional throughputs
    assert (get_schema("speed_test"), get_schema("speed_test.v1")) == (SPEED_TEST_V2, SPEED_TEST_V1)
    assert {"speed_test.v1", "speed_test.v2"} <= set(all_datasets())  # both logs are resumed
    assert published_schema_for_dataset("speed_test.v1").natural_key == ("node_id", "event_time")


def test_a_new_at_least_one_rule_cannot_be_a_minor_version():
    stricter = dataclasses.replace(
        SPEED_TEST_V2, minor=1, at_least_one=(("latency_ms", "jitter_ms"),)
    )
    assert not stricter.reads_beside(SPEED_TEST_V2)


def test_a_one_direction_test_passes_and_one_with_neither_is_refused():
    one_way = speed_rows(SPEED_TEST_V2, upload_mbps=None)
    neither = speed_rows(SPEED_TEST_V2, download_mbps=None, upload_mbps=None)
    rows = pa.concat_tables([one_way, neither]).combine_chunks().to_batches()[0]
    checked = check_rows(SPEED_TEST_V2, rows)
    assert checked.valid.to_pylist() == [True, False]
    assert checked.reasons.to_pylist()[1] == (
        "one of download_mbps, upload_mbps is required, but none is present"
    )


def test_existing_speed_test_1_data_is_still_read_and_listed_beside_2(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        for offset, (schema, table) in enumerate(
            [(SPEED_TEST_V1, speed_rows(SPEED_TEST_V1)), (SPEED_TEST_V2, speed_rows(SPEED_TEST_V2))]
        ):
            catalog.register_dataset(schema.dataset, schema.describe(), schema.fingerprint())
            path = layout.dataset_dir(schema.dataset) / "data" / "b1.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            entry = {"path": layout.relative(path), "dataset": schema.dataset, "rows": 1}
            entry |= {"sha256": "", "leaf_start": 0, "topic": "t", "partition": 0}
            catalog.register_files(offset + 1, [entry | {"start": offset, "end": offset + 1}])
        catalog.refresh_views()
        old = catalog.db.execute("SELECT node_id, download_mbps FROM speed_test_v1").fetchall()
        new = catalog.db.execute("SELECT source, test_id FROM speed_test_v2").fetchall()
    assert (old, new) == ([("an-1", 50.0)], [("rda.node", "an-1/1")])
