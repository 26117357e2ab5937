"""Rows grouped by node, in stream order, and the per-node state tables the sequence checks
carry from one call to the next (``validators/sequence.py``).

A key — (partition, node id), and the cell for flat lines — is an integer *code*, made once per
call for the rows and the states together, that sorts as the key does: partition, then node id
by its UTF-8 bytes, then cell. Grouping, state lookups and merges are then numpy on integers: a
batch makes ~40 such calls on a few hundred rows each, where the cost of each Arrow call (not of
the rows) was the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NO_NODE = -1  # the code of a row without a node (an outside speed test): it has no sequence


@dataclass(frozen=True)
class NodeCodes:
    rows: np.ndarray  # per input row: its (partition, node) code, NO_NODE without a node
    states: tuple[np.ndarray, ...]  # per state table given, per state row


def node_codes(partition: pa.Array, node: pa.Array, states: Sequence[pa.Table]) -> NodeCodes:
    """(partition, node id) codes of the rows and of the state tables, from one dictionary."""
    nodes = pa.concat_arrays([_array(node), *(_array(s.column("node_id")) for s in states)])
    encoded = pc.dictionary_encode(nodes)
    size = len(encoded.dictionary)
    # The dictionary lists ids as first met; their rank in byte order makes codes sort as keys.
    rank = np.zeros(size + 1, np.int64)  # the last: for index -1, masked below
    rank[np.asarray(pc.array_sort_indices(encoded.dictionary), np.int64)] = np.arange(size)
    index = ints(encoded.indices, -1)
    partitions = np.concatenate(
        [ints(partition), *(ints(s.column("source_partition")) for s in states)]
    )
    # Partitions ranked too (ids go up to 2**31 - 1): codes stay below rows x rows, no overflow.
    _, partition_rank = np.unique(partitions, return_inverse=True)
    codes = np.where(index >= 0, partition_rank * max(size, 1) + rank[index], NO_NODE)
    parts = np.split(codes, np.cumsum([len(node), *(s.num_rows for s in states)])[:-1])
    return NodeCodes(parts[0], tuple(parts[1:]))


def paired(first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Codes of the pairs (first[i][j], second[i][j]), ordered as the pairs sort, comparable
    across the arrays ``i`` (e.g. the rows' and a state's node codes, with their cells)."""
    _, a = np.unique(np.concatenate(first), return_inverse=True)
    _, b = np.unique(np.concatenate(second), return_inverse=True)
    codes = a * (int(b.max()) + 1 if len(b) else 1) + b
    return np.split(codes, np.cumsum([len(part) for part in first])[:-1])


@dataclass(frozen=True)
class Groups:
    rows: np.ndarray  # row positions, grouped by key, in stream order within a group
    codes: np.ndarray  # per sorted row: its key's code
    first: np.ndarray  # per sorted row: it starts its group
    last: np.ndarray  # per sorted row: it ends its group

    @property
    def ids(self) -> np.ndarray:
        return np.cumsum(self.first) - 1

    @property
    def group_codes(self) -> np.ndarray:
        return self.codes[self.first]


def group_rows(codes: np.ndarray, mask: np.ndarray) -> Groups:
    """The rows where ``mask`` holds, stably sorted by their key's code."""
    positions = np.flatnonzero(mask)
    rows = positions[np.argsort(codes[positions], kind="stable")]
    sorted_codes = codes[rows]
    first = np.ones(len(rows), bool)
    first[1:] = sorted_codes[1:] != sorted_codes[:-1]
    last = np.append(first[1:], True) if len(first) else first
    return Groups(rows, sorted_codes, first, last)


def state_rows(groups: Groups, state_codes: np.ndarray) -> np.ndarray:
    """For each sorted row, its group's row in the state (-1: the group has none)."""
    if not len(state_codes):
        return np.full(len(groups.codes), -1, np.int64)
    order = np.argsort(state_codes, kind="stable")
    ordered = state_codes[order]
    at = np.minimum(np.searchsorted(ordered, groups.codes), len(ordered) - 1)
    return np.where(ordered[at] == groups.codes, order[at], -1)


def looked_up(values: np.ndarray, at: np.ndarray, default: object) -> np.ndarray:
    """``values[at]``, ``default`` where ``at`` is -1 (``state_rows``' "none")."""
    return np.append(values, np.asarray(default, values.dtype))[at]


def new_state(
    groups: Groups,
    schema: pa.Schema,
    keys: dict[str, pa.Array | np.ndarray],
    columns: dict[str, np.ndarray],
) -> pa.Table:
    """One state row per group: its key columns (``keys``: per input row), and ``columns``,
    which hold the values per group, in group order."""
    chosen = groups.rows[groups.first]
    arrays = []
    for field in schema:
        if field.name in keys:
            values = keys[field.name]
            if isinstance(values, np.ndarray):
                arrays.append(pa.array(values[chosen], field.type))
            else:
                arrays.append(pc.take(values, pa.array(chosen, pa.int64())))
        else:
            arrays.append(pa.array(columns[field.name], field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def merge(old: pa.Table, old_codes: np.ndarray, new: pa.Table, new_codes: np.ndarray) -> pa.Table:
    """``old`` with the rows of ``new`` replacing those of the same key; sorted by key
    (``*_codes``: each row's key code, comparable between the two)."""
    if not new.num_rows:
        return old
    codes = np.concatenate([old_codes, new_codes])
    kept = np.flatnonzero(np.concatenate([~np.isin(old_codes, new_codes), np.ones(len(new), bool)]))
    order = kept[np.argsort(codes[kept], kind="stable")]
    both = pa.concat_tables([old, new if new.schema.equals(old.schema) else new.cast(old.schema)])
    return both.take(pa.array(order, pa.int64())).combine_chunks()


def last_where(groups: Groups, where: np.ndarray) -> np.ndarray:
    """Per group, the sorted index of its last row where ``where`` holds (-1: none)."""
    result = np.full(int(groups.first.sum()), -1, np.int64)
    chosen = np.flatnonzero(where)
    np.maximum.at(result, groups.ids[chosen], chosen)
    return result


def floats(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values.cast(pa.float64()), float("nan")), np.float64)


def ints(values: pa.Array, default: int = 0) -> np.ndarray:
    return np.asarray(pc.fill_null(values.cast(pa.int64()), default), np.int64)


def bools(values: pa.Array, default: bool) -> np.ndarray:
    return np.asarray(pc.fill_null(values, default), bool)


def valid(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(values), bool)


def value_before(values: np.ndarray, first: np.ndarray, from_state: np.ndarray) -> np.ndarray:
    """Each sorted row's previous value in its group; the state's for a group's first row."""
    shifted = np.roll(values, 1) if len(values) else values
    return np.where(first, from_state, shifted)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return array.cast(pa.string())
