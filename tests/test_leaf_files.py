"""Leaf files hashed a group of files at a time hold exactly what each file hashed alone holds,
and a row that has no leaf encoding is named for its own file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.leaf_rules import LeafEncodingError
from proofs.shard_log import leaves_path, write_leaf_file
from streaming import leaf_files
from streaming.leaf_files import PendingLeaves


def _leaves(parquet_file: Path) -> bytes:
    return parquet_file.with_name(leaves_path(parquet_file.name)).read_bytes()


def _rows(first: int, count: int, with_speed: bool) -> pa.Table:
    columns = {
        "node_id": pa.array(
            [f"an-{i % 3}" if i % 4 else None for i in range(first, first + count)]
        ),
        "seq": pa.array(range(first, first + count), pa.int64()),
    }
    if with_speed:
        columns["mbps"] = pa.array([i / 8 for i in range(first, first + count)], pa.float64())
    return pa.table(columns)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=6))
def test_files_hashed_together_hold_what_each_hashed_alone_holds(tmp_path_factory, sizes):
    together, alone = tmp_path_factory.mktemp("together"), tmp_path_factory.mktemp("alone")
    pending, first = PendingLeaves(), 0
    for i, (count, with_speed) in enumerate(sizes):
        rows = _rows(first, count, with_speed)
        first += count
        pending.add(together / f"f{i}.parquet", rows)
        write_leaf_file(alone / f"f{i}.parquet", rows)
    assert not list(together.iterdir())  # nothing written before `write`
    pending.write()
    for i in range(len(sizes)):
        assert _leaves(together / f"f{i}.parquet") == _leaves(alone / f"f{i}.parquet")


def test_past_the_row_bound_pending_files_are_written_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(leaf_files, "BATCH_ROWS", 10)
    pending = PendingLeaves()
    pending.add(tmp_path / "a.parquet", _rows(0, 6, False))
    assert not list(tmp_path.iterdir())
    pending.add(tmp_path / "b.parquet", _rows(6, 6, False))
    assert len(_leaves(tmp_path / "a.parquet")) == len(_leaves(tmp_path / "b.parquet")) == 6 * 32


def test_a_value_without_a_leaf_encoding_is_named_for_its_own_file_and_row(tmp_path):
    pending = PendingLeaves()
    pending.add(tmp_path / "a.parquet", _rows(0, 5, True))
    bad = _rows(5, 3, True).set_column(2, "mbps", pa.array([1.0, float("nan"), 2.0]))
    pending.add(tmp_path / "b.parquet", bad)
    with pytest.raises(LeafEncodingError) as error:
        pending.write()
    assert (error.value.column, error.value.row) == ("mbps", 1)
