"""The natural-key index: a batch's new rows are checked against the keys other batches
published (and against each other, in leaf order), without re-reading the dataset's files."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.protect import Protection
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.published import published_schema_for_dataset
from schemas.records import RAW_RECORD_SCHEMA
from simulator.fleet import generate
from sinks import key_index
from sinks.catalog import Catalog
from sinks.dedup import find_batch_duplicates, find_duplicates, record_batch_keys
from sinks.layout import DataLayout
from sinks.parquet import write_parquet

RADIO, HEARTBEAT, SPEED = "radio_kpi.v1", "node_heartbeat.v1", "speed_test.v1"
RADIO_KEY = "same natural key (node_id, cell_id, event_time) as an earlier published row"
T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z
REQUIRED = {  # values for the published schemas' required non-key fields
    "rsrp_dbm": -90.0,
    "connected_ues": 3,
    "status": "up",
    "download_mbps": 50.0,
    "upload_mbps": 10.0,
    "latency_ms": 20.0,
    "source_topic": "telemetry",
    "source_partition": 0,
    "ingest_time": T0_US,
}


def rows(dataset: str, keyed: list[tuple], first_offset: int, partition: int = 0) -> pa.Table:
    """Published rows of ``dataset``: one per natural key in ``keyed``, offsets counting up."""
    schema = published_schema_for_dataset(dataset)
    key = schema.natural_key
    values = [
        {**REQUIRED, **dict(zip(key, k, strict=True)), "source_partition": partition}
        | {"source_offset": first_offset + i}
        for i, k in enumerate(keyed)
    ]
    columns = {f.name: [v.get(f.name) for v in values] for f in schema.all_fields}
    return pa.Table.from_pydict(columns, schema=schema.arrow_schema())


class DataDir:
    """A data directory with a real catalog, where batches land published Parquet files."""

    def __init__(self, root: Path) -> None:
        self.layout = DataLayout(root)
        self.catalog = Catalog(self.layout)
        self.leaves: dict[str, int] = {}

    def land(self, dataset: str, name: str, table: pa.Table) -> str:
        path = self.layout.data_file(dataset, name)
        write_parquet(table.combine_chunks().to_batches()[0], path)
        return self.layout.relative(path)

    def register(self, dataset: str, batch_id: int, paths: list[str], partition: int = 0) -> None:
        """What the driver's commit does: the files join the catalog (and the dataset view)."""
        files = []
        for path in paths:
            table = pq.read_table(self.layout.root / path)
            offsets = table.column("source_offset")
            files.append(
                {
                    "path": path,
                    "dataset": dataset,
                    "sha256": "0" * 64,
                    "rows": table.num_rows,
                    "leaf_start": self.leaves.get(dataset, 0),
                    "topic": "telemetry",
                    "partition": partition,
                    "start": pc.min(offsets).as_py(),
                    "end": pc.max(offsets).as_py() + 1,
                }
            )
            self.leaves[dataset] = self.leaves.get(dataset, 0) + table.num_rows
        self.catalog.register_files(batch_id, files)

    def publish(self, dataset: str, batch_id: int, paths: list[str]) -> None:
        """A batch as the rewired driver finishes it: keys recorded, then files registered."""
        record_batch_keys(self.catalog, dataset, batch_id, paths)
        self.register(dataset, batch_id, paths)

    def indexed_rows(self, log: str) -> int:
        table = key_index.index_table(log)
        query = f"SELECT count(*) FROM {table} WHERE log = ?"
        return self.catalog.db.execute(query, [log]).fetchall()[0][0]


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDir]:
    data = DataDir(tmp_path)
    yield data
    data.catalog.close()


def node_messages(start_ms: int, first_offset: int) -> pa.RecordBatch:
    """Three nodes' reports over five seconds, as read from Kafka."""
    messages = list(generate(3, 5, 1.0, start_ms, 3))
    n = len(messages)
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["telemetry"] * n,
            "partition": [0] * n,
            "offset": list(range(first_offset, first_offset + n)),
            "timestamp_ms": [start_ms] * n,
            "key": [m.key for m in messages],
            "value": [m.value for m in messages],
            "format": ["rda.node.v1"] * n,
            "signature": [None] * n,
        },
        schema=RAW_RECORD_SCHEMA,
    )


def fleet_rows(data: DataDir, start_ms: int, first_offset: int = 0) -> pa.Table:
    """The fleet's radio KPIs as the pipeline publishes them (row checks, quality, privacy)."""
    raw = node_messages(start_ms, first_offset)
    standardized = standardize(raw, adapter_for("rda.node.v1"))
    protected = Protection(str(data.layout.private))(raw, standardized)
    return pa.Table.from_batches([protected.published[RADIO]])


def test_a_fleet_resending_its_reports_in_a_later_batch_repeats_every_published_key(data):
    first = fleet_rows(data, 1_764_000_000_000)
    data.publish(RADIO, 1, [data.land(RADIO, "b1", first)])
    resent = fleet_rows(data, 1_764_000_000_000, first_offset=1000)
    duplicates = find_batch_duplicates(data.catalog, RADIO, 2, [data.land(RADIO, "b2", resent)])
    assert len(resent) == len(first) > 0
    assert duplicates == {(0, o): RADIO_KEY for o in resent.column("source_offset").to_pylist()}


def test_new_keys_in_a_later_batch_are_not_duplicates(data):
    data.publish(RADIO, 1, [data.land(RADIO, "b1", fleet_rows(data, 1_764_000_000_000))])
    later = data.land(RADIO, "b2", fleet_rows(data, 1_764_000_060_000, first_offset=1000))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [later]) == {}


def test_within_a_batch_the_later_row_is_the_duplicate_and_names_the_earlier_offset(data):
    one = ("an-1", 7, T0_US)
    first = data.land(RADIO, "b1-c1", rows(RADIO, [("an-2", 7, T0_US), one], first_offset=10))
    second = data.land(RADIO, "b1-c2", rows(RADIO, [one], first_offset=20))
    duplicates = find_batch_duplicates(data.catalog, RADIO, 1, [first, second])
    assert duplicates == {(0, 20): RADIO_KEY + " (offset 11)"}


def test_the_earlier_file_in_leaf_order_wins_whatever_its_offsets(data):
    one = ("an-1", 7, T0_US)
    leaf_first = data.land(RADIO, "b1-p1", rows(RADIO, [one], first_offset=90, partition=1))
    leaf_second = data.land(RADIO, "b1-p0", rows(RADIO, [one], first_offset=5))
    duplicates = find_batch_duplicates(data.catalog, RADIO, 1, [leaf_first, leaf_second])
    assert duplicates == {(0, 5): RADIO_KEY + " (offset 90)"}


def test_a_key_published_earlier_and_repeated_twice_in_the_batch_quarantines_both(data):
    one = ("an-1", 7, T0_US)
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [one], first_offset=0))])
    again = data.land(RADIO, "b2", rows(RADIO, [one, one], first_offset=30))
    duplicates = find_batch_duplicates(data.catalog, RADIO, 2, [again])
    assert duplicates == {(0, 30): RADIO_KEY, (0, 31): RADIO_KEY + " (offset 30)"}


def test_a_record_whose_rows_repeat_a_key_of_the_batch_and_one_of_another_is_both(data):
    """A record may have several rows: each row is judged, the batch's repeats by their place
    in leaf order, the others against the index."""
    a, b = ("an-1", 1, T0_US), ("an-2", 2, T0_US)
    published = data.land(RADIO, "b1", rows(RADIO, [a], 0))
    data.publish(RADIO, 1, [published])
    first = data.land(RADIO, "b2-c1", rows(RADIO, [b], 10))
    both = rows(RADIO, [b, a], 20)
    both = both.set_column(
        both.schema.get_field_index("source_offset"), "source_offset", pa.array([20, 20])
    )
    second = data.land(RADIO, "b2-c2", both)
    found = key_index.repeated_keys(data.catalog, RADIO, 2, [first, second])
    assert found == [(0, 20, 10), (0, 20, 20)]  # b as the batch's offset 10, a as batch 1's


def index_content(data: DataDir, log: str) -> list[tuple]:
    table = key_index.index_table(log)
    query = f"SELECT * FROM {table} WHERE log = ? ORDER BY ALL"
    return data.catalog.db.execute(query, [log]).fetchall()


def test_keys_taken_from_the_rows_as_written_are_those_read_from_the_files(tmp_path):
    """The event-time step hands the index each file's rows as it wrote them: the index holds
    the same keys, typed alike, as when it reads the files (the fleet's rows: strings, cell ids,
    UTC microsecond timestamps)."""
    read, given = DataDir(tmp_path / "read"), DataDir(tmp_path / "given")
    tables = [fleet_rows(read, T0_US // 1000), fleet_rows(read, T0_US // 1000 + 5_000, 100)]
    for data in (read, given):
        paths = [data.land(RADIO, f"b{i}", t) for i, t in enumerate(tables)]
        written = dict(zip(paths, tables, strict=True)) if data is given else None
        assert key_index.record_keys_of_logs(data.catalog, 7, {RADIO: paths}, written) == sum(
            t.num_rows for t in tables
        )
    assert index_content(given, RADIO) == index_content(read, RADIO)
    assert index_content(read, RADIO)
    for data in (read, given):
        data.catalog.close()


def test_a_file_whose_rows_are_given_is_not_read_again(data):
    path = data.land(RADIO, "b1", rows(RADIO, [("an-1", 7, T0_US)], 0))
    written = {path: pq.read_table(data.layout.root / path)}
    (data.layout.root / path).unlink()  # were it read, recording would fail
    assert key_index.record_keys_of_logs(data.catalog, 1, {RADIO: [path]}, written) == 1
    later = data.land(RADIO, "b2", rows(RADIO, [("an-1", 7, T0_US)], 10))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [later]) == {(0, 10): RADIO_KEY}


def test_a_redone_batch_does_not_find_its_own_keys_and_records_them_once(data):
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 7, T0_US)], 0))])
    batch = [data.land(RADIO, "b2", rows(RADIO, [("an-1", 7, T0_US), ("an-1", 8, T0_US)], 10))]
    before = find_batch_duplicates(data.catalog, RADIO, 2, batch)
    assert record_batch_keys(data.catalog, RADIO, 2, batch) == 2
    # a crash after the keys were recorded: the redo sees the same answer, records the same rows
    assert find_batch_duplicates(data.catalog, RADIO, 2, batch) == before == {(0, 10): RADIO_KEY}
    assert record_batch_keys(data.catalog, RADIO, 2, batch) == 2
    assert data.indexed_rows(RADIO) == 3


def test_a_redo_with_fewer_rows_replaces_what_the_first_attempt_recorded(data):
    keys = [("an-1", 7, T0_US), ("an-1", 8, T0_US)]
    record_batch_keys(data.catalog, RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, keys, 0))])
    kept = data.land(RADIO, "b1", rows(RADIO, keys[:1], 0))  # the redo dropped one row
    assert record_batch_keys(data.catalog, RADIO, 1, [kept]) == 1
    later = data.land(RADIO, "b2", rows(RADIO, keys, 10))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [later]) == {(0, 10): RADIO_KEY}


def test_recording_that_fails_half_way_leaves_the_batch_s_earlier_keys_in_place(data):
    recorded = data.land(RADIO, "b1", rows(RADIO, [("an-1", 7, T0_US)], 0))
    record_batch_keys(data.catalog, RADIO, 1, [recorded])
    with pytest.raises(duckdb.IOException):
        record_batch_keys(data.catalog, RADIO, 1, [recorded, "published/radio_kpi.v1/gone.parquet"])
    assert data.indexed_rows(RADIO) == 1
    again = data.land(RADIO, "b2", rows(RADIO, [("an-1", 7, T0_US)], 10))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [again]) == {(0, 10): RADIO_KEY}


def test_an_existing_data_directory_gets_its_index_built_from_the_catalog_once(data):
    for batch_id in (1, 2):  # published before the index existed: files in the catalog only
        keys = [("an-1", batch_id, T0_US), ("an-2", batch_id, T0_US)]
        data.register(RADIO, batch_id, [data.land(RADIO, f"b{batch_id}", rows(RADIO, keys, 0))])
    repeat = data.land(RADIO, "b3", rows(RADIO, [("an-2", 1, T0_US), ("an-3", 1, T0_US)], 50))
    assert find_batch_duplicates(data.catalog, RADIO, 3, [repeat]) == {(0, 50): RADIO_KEY}
    assert data.indexed_rows(RADIO) == 4
    assert key_index.ensure_index(data.catalog, RADIO) == 0  # built once


def test_a_batch_published_without_recording_its_keys_is_indexed_at_the_next_lookup(data):
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 1, T0_US)], 0))])
    data.register(RADIO, 2, [data.land(RADIO, "b2", rows(RADIO, [("an-1", 2, T0_US)], 10))])
    assert key_index.ensure_index(data.catalog, RADIO) == 1
    assert data.indexed_rows(RADIO) == 2


def test_the_index_survives_closing_and_reopening_the_catalog(data):
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 1, T0_US)], 0))])
    data.catalog.close()
    data.catalog = Catalog(data.layout)
    again = data.land(RADIO, "b2", rows(RADIO, [("an-1", 1, T0_US)], 10))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [again]) == {(0, 10): RADIO_KEY}
    assert key_index.ensure_index(data.catalog, RADIO) == 0


def test_a_log_caught_up_in_this_opening_is_asked_again_only_after_a_file_is_listed(
    data, monkeypatch
):
    asked = []
    unindexed = key_index._unindexed_files
    monkeypatch.setattr(
        key_index, "_unindexed_files", lambda db, logs: asked.extend(logs) or unindexed(db, logs)
    )
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 1, T0_US)], 0))])
    asked.clear()  # the batch's files were listed after its keys were recorded
    assert key_index.ensure_index(data.catalog, RADIO) == 0
    assert key_index.ensure_index(data.catalog, RADIO) == 0
    assert asked == [RADIO]
    data.register(RADIO, 2, [data.land(RADIO, "b2", rows(RADIO, [("an-1", 2, T0_US)], 10))])
    assert key_index.ensure_index(data.catalog, RADIO) == 1
    assert asked == [RADIO, RADIO]


def test_a_batch_s_shards_are_caught_up_in_one_lookup_each_from_its_own_files(data, monkeypatch):
    asked = []
    unindexed = key_index._unindexed_files
    monkeypatch.setattr(
        key_index, "_unindexed_files", lambda db, logs: asked.append(logs) or unindexed(db, logs)
    )
    for partition, keys in ((0, [("an-1", 1, T0_US)]), (1, [("an-2", 1, T0_US), ("an-3", 1, 0)])):
        table = rows(RADIO, keys, 0, partition)
        data.register(RADIO, 1, [data.land(RADIO, f"p{partition}", table)], partition)
    data.register(HEARTBEAT, 1, [data.land(HEARTBEAT, "h", rows(HEARTBEAT, [("an-1", 0)], 0))])
    logs = [f"{RADIO}/telemetry.p0", f"{RADIO}/telemetry.p1", HEARTBEAT]
    assert key_index.catch_up(data.catalog, logs) == 3  # (log, batch) pairs indexed
    assert [data.indexed_rows(log) for log in logs] == [1, 2, 1]
    assert key_index.catch_up(data.catalog, logs) == 0
    assert asked == [sorted(logs)]


def test_the_shards_of_a_dataset_share_its_table_and_each_is_checked_against_its_own_keys(data):
    one = ("an-1", 1, T0_US)
    p0, p1 = f"{RADIO}/telemetry.p0", f"{RADIO}/telemetry.p1"
    first = {p0: [data.land(RADIO, "b1-p0", rows(RADIO, [one], 0))]}
    key_index.record_keys_of_logs(data.catalog, 1, first)
    again = {
        p0: [data.land(RADIO, "b2-p0", rows(RADIO, [one], 10))],
        p1: [data.land(RADIO, "b2-p1", rows(RADIO, [one], 20, partition=1))],
    }
    assert key_index.repeated_keys_of_logs(data.catalog, 2, again) == {RADIO: [(0, 10, 10)]}
    key_index.record_keys_of_logs(data.catalog, 2, again)
    assert (data.indexed_rows(p0), data.indexed_rows(p1)) == (2, 1)
    tables = data.catalog.db.execute(
        "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, 'dataset_keys__')"
    ).fetchall()
    assert tables == [(key_index.index_table(RADIO),)]


def test_a_catalog_with_the_index_s_earlier_tables_drops_them_and_indexes_its_files_again(data):
    published = data.land(RADIO, "b1", rows(RADIO, [("an-1", 1, T0_US)], 0))
    data.register(RADIO, 1, [published])
    legacy = ["natural_key_batches", "natural_keys__radio_kpi_v1", "shard_keys__radio_kpi_v1_x"]
    data.catalog.db.execute(f"CREATE TABLE {legacy[0]} (dataset VARCHAR, batch_id BIGINT)")
    data.catalog.db.execute(f"INSERT INTO {legacy[0]} VALUES ('{RADIO}', 1)")  # said indexed
    for table in legacy[1:]:
        data.catalog.db.execute(f"CREATE TABLE {table} (batch_id BIGINT, node_id VARCHAR)")
    data.catalog.close()
    data.catalog = Catalog(data.layout)  # as a catalog of the earlier version opens
    again = data.land(RADIO, "b2", rows(RADIO, [("an-1", 1, T0_US)], 10))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [again]) == {(0, 10): RADIO_KEY}
    left = data.catalog.db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert not {table for (table,) in left} & set(legacy)
    assert data.indexed_rows(RADIO) == 1


def test_a_catch_up_undone_with_its_failed_transaction_is_done_again(data):
    data.register(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 1, T0_US)], 0))])
    with pytest.raises(duckdb.IOException):  # caught up batch 1, then failed: all rolled back
        record_batch_keys(data.catalog, RADIO, 2, ["published/radio_kpi.v1/gone.parquet"])
    again = data.land(RADIO, "b2", rows(RADIO, [("an-1", 1, T0_US)], 10))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [again]) == {(0, 10): RADIO_KEY}


def test_rows_of_different_datasets_with_the_same_key_values_never_collide(data):
    same = [("an-1", T0_US)]  # heartbeats and speed tests share the key (node_id, event_time)
    heartbeats = data.land(HEARTBEAT, "b1", rows(HEARTBEAT, same, 0))
    data.publish(HEARTBEAT, 1, [heartbeats])
    speed = data.land(SPEED, "b2", rows(SPEED, same, 10))
    assert find_batch_duplicates(data.catalog, SPEED, 2, [speed]) == {}
    assert find_batch_duplicates(data.catalog, HEARTBEAT, 2, [heartbeats]) == {
        (0, 0): ("same natural key (node_id, event_time) as an earlier published row")
    }


def test_keys_are_compared_exactly_not_by_a_hash(data):
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 7, T0_US)], 0))])
    near = [("an-1", 7, T0_US + 1), ("an-1 ", 7, T0_US), ("an-1", 7 + (1 << 32), T0_US)]
    later = data.land(RADIO, "b2", rows(RADIO, near, 10))
    assert find_batch_duplicates(data.catalog, RADIO, 2, [later]) == {}
    columns = data.catalog.db.execute(
        f"SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_name = '{key_index.index_table(RADIO)}' ORDER BY ordinal_position"
    ).fetchall()
    assert columns == [
        ("log", "VARCHAR"),
        ("batch_id", "BIGINT"),
        ("node_id", "VARCHAR"),
        ("cell_id", "BIGINT"),
        ("event_time", "TIMESTAMP WITH TIME ZONE"),
    ]


def test_forgetting_a_batch_removes_its_keys_from_every_dataset(data):
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 7, T0_US)], 0))])
    data.publish(HEARTBEAT, 1, [data.land(HEARTBEAT, "b1", rows(HEARTBEAT, [("an-1", T0_US)], 0))])
    key_index.forget_batch(data.catalog, 1)
    assert (data.indexed_rows(RADIO), data.indexed_rows(HEARTBEAT)) == (0, 0)


# -- the index answers exactly what re-reading every earlier file answers --------------------

keys = st.tuples(st.sampled_from(["an-1", "an-2"]), st.integers(0, 2), st.integers(0, 2))
files = st.lists(st.lists(keys, min_size=1, max_size=6), min_size=1, max_size=3)
batches = st.lists(st.tuples(files, st.booleans()), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None)
@given(batches=batches)
def test_the_index_finds_exactly_what_re_reading_the_earlier_files_finds(batches):
    with tempfile.TemporaryDirectory(prefix="rda-key-index-") as root:
        data = DataDir(Path(root))
        offset = 0
        for batch_id, (batch_files, recorded) in enumerate(batches, start=1):
            paths = []
            for i, keyed in enumerate(batch_files):
                keyed = [(node, cell, T0_US + second * 1_000_000) for node, cell, second in keyed]
                paths.append(data.land(RADIO, f"b{batch_id}-{i}", rows(RADIO, keyed, offset)))
                offset += len(keyed)
            prior = [f["path"] for f in data.catalog.dataset_files(RADIO)]
            expected = find_duplicates(data.layout, RADIO, prior, paths)
            assert find_batch_duplicates(data.catalog, RADIO, batch_id, paths) == expected
            # some batches record their keys, others are only registered (indexed on next use)
            (data.publish if recorded else data.register)(RADIO, batch_id, paths)
        data.catalog.close()


def test_one_duplicate_check_takes_logs_of_several_datasets_each_with_its_own_key(data):
    data.publish(RADIO, 1, [data.land(RADIO, "b1", rows(RADIO, [("an-1", 1, T0_US)], 0))])
    data.publish(HEARTBEAT, 1, [data.land(HEARTBEAT, "b1", rows(HEARTBEAT, [("an-1", T0_US)], 0))])
    new = {
        RADIO: [data.land(RADIO, "b2", rows(RADIO, [("an-1", 1, T0_US), ("an-2", 1, T0_US)], 10))],
        HEARTBEAT: [data.land(HEARTBEAT, "b2", rows(HEARTBEAT, [("an-2", T0_US)] * 2, 20))],
        SPEED: [data.land(SPEED, "b2", rows(SPEED, [("an-1", T0_US)], 30))],  # heartbeat's values
    }
    together = key_index.repeated_keys_of_logs(data.catalog, 2, new)
    assert together == {RADIO: [(0, 10, 10)], HEARTBEAT: [(0, 21, 20)], SPEED: []}
    alone = {d: key_index.repeated_keys(data.catalog, d, 2, paths) for d, paths in new.items()}
    assert alone == together
