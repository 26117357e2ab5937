"""A batch records the natural keys of the files it publishes from the key columns it kept as it
wrote them, up to ``KEPT_KEY_ROWS`` a partition; past that it reads its files back. The index
holds the same keys either way."""

from __future__ import annotations

import duckdb

from pipelines.kafka_source import open_source
from sinks import key_index
from sinks.layout import DataLayout
from streaming import event_time
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch


def _indexed_keys(data_dir) -> dict[str, list[tuple]]:
    """Every dataset's indexed keys, by shard (batch ids differ between data directories)."""
    with duckdb.connect(str(DataLayout(data_dir).catalog), read_only=True) as db:
        tables = [
            t for (t,) in db.execute("SHOW TABLES").fetchall() if t.startswith("dataset_keys")
        ]
        return {t: db.execute(f"SELECT * EXCLUDE (batch_id) FROM {t} ORDER BY ALL").fetchall()
                for t in tables}  # fmt: skip


_KEY_ROWS = key_index._key_rows


def _batch_counting_kept_keys(broker, topic, data_dir, monkeypatch) -> int:
    """Run one batch into ``data_dir``; how many datasets recorded their keys from kept ones."""
    taken = []
    monkeypatch.setattr(key_index, "_key_rows", lambda *a: taken.append(1) or _KEY_ROWS(*a))
    config = RunConfig(broker.bootstrap, topic, f"group-{data_dir.name}", data_dir)
    run_batch(config, open_source(broker.bootstrap), open_chain("embedded", None, None).anchor)
    return len(taken)


def test_past_the_kept_key_rows_a_batch_reads_its_files_and_indexes_the_same_keys(
    broker, topic, publish, tmp_path, monkeypatch
):
    publish(broker, topic, nodes=6, duration_s=20)
    kept = _batch_counting_kept_keys(broker, topic, tmp_path / "kept", monkeypatch)
    monkeypatch.setattr(event_time, "KEPT_KEY_ROWS", 0)
    read = _batch_counting_kept_keys(broker, topic, tmp_path / "read", monkeypatch)
    assert kept > 0 and read == 0  # every dataset from its kept keys, then none
    indexed = _indexed_keys(tmp_path / "kept")
    assert indexed == _indexed_keys(tmp_path / "read")
    assert len(indexed) >= 3 and all(indexed.values())
