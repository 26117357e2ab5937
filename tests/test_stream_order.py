"""Staged rows in stream order: by partition and offset, rows of one record in the order given."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.windows import stream_order

ROW = st.tuples(st.integers(0, 3), st.integers(0, 50))  # (partition, offset)


def table(rows: list[tuple[int, int]]) -> pa.Table:
    return pa.table(
        {
            "source_partition": pa.array([p for p, _ in rows], pa.int32()),
            "source_offset": pa.array([o for _, o in rows], pa.int64()),
            "position": pa.array(range(len(rows)), pa.int64()),  # where each row was given
        }
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(ROW, max_size=40), st.booleans())
def test_rows_come_in_stream_order_and_a_record_s_rows_keep_their_order(rows, presorted):
    if presorted:  # as the stage writes them: the path that skips the sort
        rows = sorted(rows)
    ordered = stream_order(table(rows)).to_pylist()
    expected = sorted(
        table(rows).to_pylist(), key=lambda r: (r["source_partition"], r["source_offset"])
    )
    assert ordered == expected  # Python's sort is stable: ties keep their given order


def test_rejects_appended_after_a_chunk_s_rows_are_put_back_in_place():
    staged, rejects = [(0, 10), (0, 11), (0, 13)], [(0, 12), (0, 9)]
    ordered = stream_order(table(staged + rejects))
    assert ordered.column("source_offset").to_pylist() == [9, 10, 11, 12, 13]
