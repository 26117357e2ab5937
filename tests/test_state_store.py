"""The event-time state store: a partition's next batch starts from the snapshot its last one
wrote, the same whether it is read back from disk or kept by the process that wrote it."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.kafka_source import open_source
from sinks import state_store
from sinks.layout import DataLayout
from sinks.parquet import read_parquet, write_private_parquet
from sinks.state_store import StateStore
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch


def test_a_snapshot_kept_by_its_writer_is_the_one_on_disk(broker, topic, publish, tmp_path):
    publish(broker, topic, nodes=12, duration_s=10)
    data = tmp_path / "data"
    config = RunConfig(broker.bootstrap, topic, "g", data, isolate=False)
    chain = open_chain("embedded", None, None)
    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor)
    layout = DataLayout(data)
    folders = sorted(layout.state_dir(topic, 0).parent.glob("p*/snapshots/b*"))
    assert len(folders) == 4  # one per partition, written by this batch
    for folder in folders:
        partition = int(folder.parent.parent.name.removeprefix("p"))
        store = StateStore(layout, topic, partition)
        kept = store.read_snapshot(summary.batch_id)
        state_store._LAST_WRITTEN.clear()
        doc, tables = store.read_snapshot(summary.batch_id)
        assert kept[0] == doc
        assert sorted(kept[1]) == sorted(tables) != []
        for name, table in tables.items():
            assert kept[1][name].schema.equals(table.schema)
            assert kept[1][name].equals(table)


def test_a_snapshot_removed_from_disk_is_not_answered_from_memory(tmp_path):
    store = StateStore(DataLayout(tmp_path), "t", 0)
    store.write_snapshot(7, {"watermarks": {}}, {})
    store.collect(keep=set())
    with pytest.raises(FileNotFoundError):
        store.read_snapshot(7)


def test_a_table_left_as_it_was_read_is_the_same_file_and_the_others_are_new(tmp_path):
    store = StateStore(DataLayout(tmp_path), "t", 0)
    first = {"kept": pa.table({"node": ["a", "b"]}), "moved": pa.table({"n": [1]})}
    store.write_snapshot(1, {"watermarks": {}}, first)
    state_store._LAST_WRITTEN.clear()  # read back from the files, as another process would
    _doc, read = store.read_snapshot(1)
    store.write_snapshot(2, {"watermarks": {}}, {**read, "moved": pa.table({"n": [2]})})
    kept = [store.snapshot_dir(b) / "kept.parquet" for b in (1, 2)]
    moved = [store.snapshot_dir(b) / "moved.parquet" for b in (1, 2)]
    assert kept[0].stat().st_ino == kept[1].stat().st_ino
    assert moved[0].stat().st_ino != moved[1].stat().st_ino
    state_store._LAST_WRITTEN.clear()
    _doc, second = StateStore(DataLayout(tmp_path), "t", 0).read_snapshot(2)
    assert second["kept"].equals(first["kept"])
    assert second["moved"].to_pydict() == {"n": [2]}


def test_an_equal_table_that_was_not_read_is_written_not_linked(tmp_path):
    store = StateStore(DataLayout(tmp_path), "t", 0)
    store.write_snapshot(1, {"watermarks": {}}, {"kept": pa.table({"node": ["a"]})})
    store.write_snapshot(2, {"watermarks": {}}, {"kept": pa.table({"node": ["a"]})})
    inodes = {(store.snapshot_dir(b) / "kept.parquet").stat().st_ino for b in (1, 2)}
    assert len(inodes) == 2


def test_a_state_file_is_written_the_same_every_time_and_read_back_whole(tmp_path):
    rows = pa.record_batch(
        {"node_id": ["an-1", "an-2", None], "last_us": pa.array([1, 2, 3], pa.int64())}
    )
    first, again = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_private_parquet(rows, first)
    write_private_parquet(rows, again)
    assert first.read_bytes() == again.read_bytes()
    assert read_parquet(first).equals(pa.Table.from_batches([rows]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]
    column = pq.ParquetFile(first).metadata.row_group(0).column(0)
    assert (column.compression, column.is_stats_set) == ("LZ4", False)  # the cheap encoding


def test_a_snapshot_whose_writing_fails_half_way_is_not_there_and_is_written_whole_again(
    tmp_path, monkeypatch
):
    """Its tables are written in place inside a partial folder: the folder's rename is what
    makes a snapshot appear, whole or not at all."""
    store = StateStore(DataLayout(tmp_path), "t", 0)
    tables = {"a": pa.table({"n": [1]}), "b": pa.table({"n": [2]})}
    written = []

    def fail_on_the_second(batch, path, atomic=True):
        if written:
            raise OSError("disk full")
        written.append(path)
        return write_private_parquet(batch, path, atomic)

    monkeypatch.setattr(state_store, "write_private_parquet", fail_on_the_second)
    with pytest.raises(OSError, match="disk full"):
        store.write_snapshot(3, {"watermarks": {}}, tables)
    assert not store.has_snapshot(3) and not store.snapshot_dir(3).exists()
    monkeypatch.setattr(state_store, "write_private_parquet", write_private_parquet)
    store.write_snapshot(3, {"watermarks": {}}, tables)
    state_store._LAST_WRITTEN.clear()
    _doc, read = store.read_snapshot(3)
    assert {name: t.to_pydict() for name, t in read.items()} == {"a": {"n": [1]}, "b": {"n": [2]}}


# -- a snapshot that cannot be read -----------------------------------------------------------


def test_a_state_file_cut_short_stops_the_run_naming_it(tmp_path):
    from sinks.state_store import StateDamaged
    from streaming.retry import failure_kind, is_transient

    store = StateStore(DataLayout(tmp_path), "t", 0)
    store.write_snapshot(5, {"watermarks": {"0": 12}}, {})
    path = store.snapshot_dir(5) / "state.json"
    path.write_bytes(path.read_bytes()[:-9])
    state_store._LAST_WRITTEN.clear()
    with pytest.raises(StateDamaged) as stopped:
        store.read_snapshot(5)
    assert str(path) in str(stopped.value)
    assert failure_kind(stopped.value) == "disk" and not is_transient(stopped.value)


def test_a_state_file_of_another_shape_is_refused(tmp_path):
    from sinks.state_store import StateDamaged

    store = StateStore(DataLayout(tmp_path), "t", 0)
    store.write_snapshot(5, {"watermarks": {}}, {})
    (store.snapshot_dir(5) / "state.json").write_text("[1, 2]")
    state_store._LAST_WRITTEN.clear()
    with pytest.raises(StateDamaged, match="unknown state format 'list'"):
        store.read_snapshot(5)


def shared(tmp_path, name: str) -> StateStore:
    """A worker's state of partition 0, in its own work directory, shared through one store."""
    from sinks.storage import Store

    return StateStore(DataLayout(tmp_path / name), "t", 0, Store.open(tmp_path / "store"))


def test_a_copy_cut_short_by_a_killed_takeover_is_completed_from_the_store(tmp_path):
    tables = {"a": pa.table({"n": [1]}), "b": pa.table({"n": [2, 3]})}
    shared(tmp_path, "owner").write_snapshot(4, {"watermarks": {"0": 9}}, tables)
    taker = shared(tmp_path, "taker")
    taker.read_snapshot(4)
    (taker.snapshot_dir(4) / "b.parquet").unlink()  # killed before the copy had it
    state_store._LAST_WRITTEN.clear()
    doc, read = shared(tmp_path, "taker").read_snapshot(4)
    assert doc["watermarks"] == {"0": 9}
    assert {name: t.to_pydict() for name, t in read.items()} == {
        "a": {"n": [1]},
        "b": {"n": [2, 3]},
    }


def test_a_damaged_local_copy_is_fetched_again_from_the_store(tmp_path):
    shared(tmp_path, "owner").write_snapshot(4, {"watermarks": {"0": 9}}, {})
    taker = shared(tmp_path, "taker")
    taker.read_snapshot(4)
    local = taker.snapshot_dir(4) / "state.json"
    local.write_bytes(local.read_bytes()[:10])
    state_store._LAST_WRITTEN.clear()
    assert shared(tmp_path, "taker").read_snapshot(4)[0]["watermarks"] == {"0": 9}
