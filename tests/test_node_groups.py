"""The per-node state the sequence checks carry: each row finds its own node's state row, and a
merge replaces exactly the rows of the same key — whatever characters a node id holds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from validators.node_groups import group_rows, merge, row_keys, state_of_rows
from validators.sequence import COUNTER_STATE, flat_line_state_schema

# Node ids built to collide if keys were joined naively: the separator, digits, emptiness.
NODE_IDS = st.one_of(
    st.sampled_from(["a", "b", "", "0", "1", "\x1f", "1\x1fa", "a\x1f1", "0\x1f0"]),
    st.text(max_size=3),
)
PARTITIONS = st.integers(0, 3)
FLAT_LINE = flat_line_state_schema(("rsrp_dbm",))


def counter_state(rows: list[tuple[int, str, int]]) -> pa.Table:
    partitions, nodes, uptimes = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.Table.from_arrays(
        [pa.array(partitions, pa.int32()), pa.array(nodes, pa.string()), pa.array(uptimes)],
        schema=COUNTER_STATE,
    )


unique_states = st.lists(
    st.tuples(PARTITIONS, NODE_IDS, st.integers(0, 10**6)), max_size=12, unique_by=lambda r: r[:2]
)


@given(rows=st.lists(st.tuples(PARTITIONS, NODE_IDS), max_size=30), state=unique_states)
def test_each_row_finds_its_own_node_s_state_row_and_no_other(rows, state):
    columns = {
        "source_partition": pa.array([p for p, _ in rows], pa.int32()),
        "node_id": pa.array([n for _, n in rows], pa.string()),
    }
    groups = group_rows(columns, np.ones(len(rows), bool))
    found = state_of_rows(groups, counter_state(state)).column("uptime_s").to_pylist()
    known = {(p, n): uptime for p, n, uptime in state}
    keys = zip(groups.keys.column(0).to_pylist(), groups.keys.column(1).to_pylist(), strict=True)
    assert found == [known.get(key) for key in keys]


@given(old=unique_states, new=unique_states)
def test_a_merge_replaces_exactly_the_rows_of_the_same_key_and_keeps_the_rest(old, new):
    old = sorted(old)  # a state is always a merge's output: sorted by key
    merged = merge(counter_state(old), counter_state(new), ["source_partition", "node_id"])
    expected = {(p, n): u for p, n, u in old} | {(p, n): u for p, n, u in new}
    assert merged.to_pylist() == [
        {"source_partition": p, "node_id": n, "uptime_s": u}
        for (p, n), u in sorted(expected.items())
    ]


@given(
    old=st.lists(
        st.tuples(PARTITIONS, NODE_IDS, st.integers(-1, 12)), max_size=12, unique_by=lambda r: r
    ),
    new=st.lists(
        st.tuples(PARTITIONS, NODE_IDS, st.integers(-1, 12)), max_size=12, unique_by=lambda r: r
    ),
)
def test_a_three_column_key_with_a_cell_is_merged_by_all_three(old, new):
    def table(rows, run):
        return pa.Table.from_pylist(
            [
                {"source_partition": p, "node_id": n, "cell_id": c, "rsrp_dbm": -90.0, "run": run}
                for p, n, c in rows
            ],
            schema=FLAT_LINE,
        )

    keys = ["source_partition", "node_id", "cell_id"]
    old = sorted(old)  # a state is always a merge's output: sorted by key
    merged = merge(table(old, 1), table(new, 2), keys).to_pylist()
    expected = {row: 1 for row in old} | {row: 2 for row in new}
    assert [(r["source_partition"], r["node_id"], r["cell_id"], r["run"]) for r in merged] == [
        (*key, run) for key, run in sorted(expected.items())
    ]


def test_keys_that_look_alike_when_joined_stay_apart():
    table = pa.table(
        {
            "source_partition": pa.array([1, 1, 11], pa.int32()),
            "cell_id": pa.array([1, 11, 1], pa.int64()),
            "node_id": pa.array(["1\x1fa", "a", "a"]),
        }
    )
    keys = row_keys(table, ["source_partition", "node_id", "cell_id"]).to_pylist()
    assert len(set(keys)) == 3
