"""The per-node state the sequence checks carry: keys become integer codes that sort as the keys
do, each row finds its own node's state row, and a merge replaces exactly the rows of the same
key — whatever characters a node id holds."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from validators.node_groups import (
    NO_NODE,
    group_rows,
    looked_up,
    merge,
    node_codes,
    paired,
    state_rows,
)
from validators.sequence import COUNTER_STATE, flat_line_state_schema

# Node ids built to collide if keys were joined naively: the separator, digits, emptiness, and
# characters whose UTF-8 bytes sort otherwise than a dictionary's order of first sight.
NODE_IDS = st.one_of(
    st.sampled_from(["a", "b", "", "0", "1", "\x1f", "1\x1fa", "a\x1f1", "0\x1f0", "é", "z"]),
    st.text(max_size=3),
)
PARTITIONS = st.integers(0, 3)
FLAT_LINE = flat_line_state_schema(("rsrp_dbm",))
unique_states = st.lists(
    st.tuples(PARTITIONS, NODE_IDS, st.integers(0, 10**6)), max_size=12, unique_by=lambda r: r[:2]
)
cell_states = st.lists(
    st.tuples(PARTITIONS, NODE_IDS, st.integers(-1, 12)), max_size=12, unique_by=lambda r: r
)


def counter_state(rows: list[tuple[int, str, int]]) -> pa.Table:
    partitions, nodes, uptimes = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.Table.from_arrays(
        [pa.array(partitions, pa.int32()), pa.array(nodes, pa.string()), pa.array(uptimes)],
        schema=COUNTER_STATE,
    )


def flat_line_state(rows: list[tuple[int, str, int]], run: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"source_partition": p, "node_id": n, "cell_id": c, "rsrp_dbm": -90.0, "run": run}
            for p, n, c in rows
        ],
        schema=FLAT_LINE,
    )


def by_key(row: tuple) -> tuple:
    """The order of state rows: partition, node id by its UTF-8 bytes, then the rest."""
    return (row[0], row[1].encode(), *row[2:])


def codes_of(tables: list[pa.Table]) -> list[np.ndarray]:
    """The codes of every table's rows, from one dictionary (rows none: tables only)."""
    empty = pa.array([], pa.string())
    return list(node_codes(pa.array([], pa.int32()), empty, tables).states)


@given(keys=st.lists(st.tuples(PARTITIONS, st.one_of(st.none(), NODE_IDS)), max_size=30))
def test_codes_sort_as_the_keys_partition_then_node_id_by_its_utf8_bytes(keys):
    partitions = pa.array([p for p, _ in keys], pa.int32())
    codes = node_codes(partitions, pa.array([n for _, n in keys], pa.string()), []).rows.tolist()
    assert [code == NO_NODE for code in codes] == [node is None for _, node in keys]
    known = [(c, (p, n.encode())) for c, (p, n) in zip(codes, keys, strict=True) if n is not None]
    for (code_a, key_a), (code_b, key_b) in itertools.product(known, repeat=2):
        assert (code_a < code_b) == (key_a < key_b)
        assert (code_a == code_b) == (key_a == key_b)


def test_codes_of_the_highest_partition_ids_keep_their_order():
    top = 2**31 - 1  # Kafka's largest partition id
    partitions = pa.array([top, 0, top, top - 1], pa.int32())
    nodes = pa.array(["b", "z", "a", "z"], pa.string())
    codes = node_codes(partitions, nodes, []).rows.tolist()
    assert sorted(range(4), key=codes.__getitem__) == [1, 3, 2, 0]


@given(
    pairs=st.lists(
        st.tuples(st.integers(-1, 5), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=30
    ),
    split=st.integers(0, 30),
)
def test_paired_codes_sort_as_the_pairs_across_arrays_whatever_the_cell_ids(pairs, split):
    first = np.array([a for a, _ in pairs], np.int64)
    second = np.array([b for _, b in pairs], np.int64)
    cut = min(split, len(pairs))
    codes = np.concatenate(paired([first[:cut], first[cut:]], [second[:cut], second[cut:]]))
    for i, j in itertools.product(range(len(pairs)), repeat=2):
        assert (codes[i] < codes[j]) == (pairs[i] < pairs[j])
        assert (codes[i] == codes[j]) == (pairs[i] == pairs[j])


def test_keys_that_look_alike_when_joined_have_their_own_codes():
    partitions = pa.array([1, 1, 11, 1], pa.int32())
    nodes = pa.array(["1\x1fa", "a", "a", "1\x1f"], pa.string())
    assert len(set(node_codes(partitions, nodes, []).rows.tolist())) == 4


@given(rows=st.lists(st.tuples(PARTITIONS, NODE_IDS), max_size=30), state=unique_states)
def test_each_row_finds_its_own_node_s_state_row_and_no_other(rows, state):
    table = counter_state(state)
    partitions = pa.array([p for p, _ in rows], pa.int32())
    codes = node_codes(partitions, pa.array([n for _, n in rows], pa.string()), [table])
    groups = group_rows(codes.rows, np.ones(len(rows), bool))
    uptimes = np.asarray(table.column("uptime_s"), np.int64)
    found = looked_up(uptimes, state_rows(groups, codes.states[0]), -1).tolist()
    known = {(p, n): uptime for p, n, uptime in state}
    assert found == [known.get(rows[i], -1) for i in groups.rows]


@given(rows=st.lists(st.tuples(PARTITIONS, NODE_IDS), max_size=30))
def test_groups_hold_a_key_s_rows_in_stream_order_and_mark_its_first_and_last(rows):
    partitions = pa.array([p for p, _ in rows], pa.int32())
    codes = node_codes(partitions, pa.array([n for _, n in rows], pa.string()), []).rows
    groups = group_rows(codes, np.ones(len(rows), bool))
    positions: dict[tuple[int, str], list[int]] = {}
    for i, key in enumerate(rows):
        positions.setdefault(key, []).append(i)
    ordered = sorted(positions.items(), key=lambda kv: by_key(kv[0]))
    assert groups.rows.tolist() == [i for _, rows_of in ordered for i in rows_of]
    starts = [i == rows_of[0] for _, rows_of in ordered for i in rows_of]
    ends = [i == rows_of[-1] for _, rows_of in ordered for i in rows_of]
    assert groups.first.tolist() == starts and groups.last.tolist() == ends


@given(old=unique_states, new=unique_states)
def test_a_merge_replaces_exactly_the_rows_of_the_same_key_and_keeps_the_rest(old, new):
    old = sorted(old, key=by_key)  # a state is always a merge's output: sorted by key
    old_table, new_table = counter_state(old), counter_state(new)
    old_codes, new_codes = codes_of([old_table, new_table])
    merged = merge(old_table, old_codes, new_table, new_codes)
    expected = {(p, n): u for p, n, u in old} | {(p, n): u for p, n, u in new}
    assert merged.to_pylist() == [
        {"source_partition": p, "node_id": n, "uptime_s": u}
        for (p, n), u in sorted(expected.items(), key=lambda kv: by_key(kv[0]))
    ]


@given(old=cell_states, new=cell_states)
def test_a_three_column_key_with_a_cell_is_merged_by_all_three(old, new):
    old = sorted(old, key=by_key)  # a state is always a merge's output: sorted by key
    old_table, new_table = flat_line_state(old, 1), flat_line_state(new, 2)
    cells = [np.asarray(t.column("cell_id"), np.int64) for t in (old_table, new_table)]
    old_codes, new_codes = paired(codes_of([old_table, new_table]), cells)
    merged = merge(old_table, old_codes, new_table, new_codes).to_pylist()
    expected = {row: 1 for row in old} | {row: 2 for row in new}
    assert [(r["source_partition"], r["node_id"], r["cell_id"], r["run"]) for r in merged] == [
        (*key, run) for key, run in sorted(expected.items(), key=lambda kv: by_key(kv[0]))
    ]
