"""Rows grouped by node, in stream order, and the per-node state tables the sequence checks
carry from one call to the next (``validators/sequence.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Groups:
    rows: np.ndarray  # row positions, grouped by key, in stream order within a group
    first: np.ndarray  # per sorted row: it starts its group
    last: np.ndarray  # per sorted row: it ends its group
    keys: pa.Table  # the key columns of the sorted rows

    @property
    def ids(self) -> np.ndarray:
        return np.cumsum(self.first) - 1

    def group_keys(self) -> pa.Table:
        return self.keys.take(pa.array(np.flatnonzero(self.first)))


def group_rows(columns: dict[str, pa.Array], mask: np.ndarray) -> Groups:
    """The rows where ``mask`` holds, stably sorted by the key columns."""
    positions = np.flatnonzero(mask)
    taken = pa.array(positions, pa.int64())
    keys = pa.table({name: pc.take(values, taken) for name, values in columns.items()})
    # Sort on integers: string keys become dictionary codes (grouping needs no collation).
    sortable = {
        name: pc.dictionary_encode(keys.column(name)).combine_chunks().indices
        if pa.types.is_string(keys.column(name).type)
        else keys.column(name)
        for name in columns
    }
    sortable["_row"] = pa.array(np.arange(len(positions)), pa.int64())
    order = pc.sort_indices(pa.table(sortable), [(k, "ascending") for k in sortable])
    keys = keys.take(order).combine_chunks()
    order = np.asarray(order, np.int64)
    first = np.ones(len(order), bool)
    if len(order) > 1:
        first[1:] = False
        for name in columns:  # a row starts a group when any key differs from the row before
            values = keys.column(name).combine_chunks()
            same = pc.fill_null(pc.equal(values.slice(1), values.slice(0, len(values) - 1)), False)
            first[1:] |= ~np.asarray(same, bool)
    last = np.append(first[1:], True) if len(first) else first
    return Groups(positions[order], first, last, keys)


def state_of_rows(groups: Groups, state: pa.Table) -> pa.Table:
    """For each sorted row, its group's state row (nulls when the group has none)."""
    names = groups.keys.column_names
    values = [n for n in state.schema.names if n not in names]
    # A null key matches nothing, as in a join (the checks group only rows with a node).
    keys, known = row_keys(groups.keys, names), row_keys(state, names)
    found = pc.index_in(keys, value_set=known, skip_nulls=True)
    return state.select(values).take(found).combine_chunks()


def new_state(groups: Groups, schema: pa.Schema, columns: dict[str, np.ndarray]) -> pa.Table:
    """One state row per group: ``columns`` hold the values per group, in group order."""
    keys = groups.group_keys()
    arrays = [keys.column(f.name) for f in schema if f.name in keys.column_names]
    arrays += [pa.array(columns[f.name], f.type) for f in schema if f.name not in keys.column_names]
    return pa.Table.from_arrays(arrays, schema=schema)


def merge(old: pa.Table, new: pa.Table, keys: list[str]) -> pa.Table:
    """``old`` with the rows of ``new`` replacing those of the same key; sorted by key."""
    if not new.num_rows:
        return old
    replaced = pc.is_in(row_keys(old, keys), value_set=row_keys(new, keys), skip_nulls=True)
    kept = old.filter(pc.invert(replaced)) if old.num_rows else old
    merged = pa.concat_tables(
        [kept.select(old.schema.names).cast(old.schema), new.cast(old.schema)]
    )
    return merged.sort_by([(k, "ascending") for k in keys]).combine_chunks()


def row_keys(table: pa.Table, names: list[str]) -> pa.Array:
    """Each row's key columns as one text, equal for equal keys only: the integer columns first
    (their digits never hold the separator), then the one text column (a node id may hold any
    character). A lookup by it costs a fifth of an Arrow join on such small tables, which a
    batch makes ~40 of."""
    columns = [table.column(n) for n in names]
    texts = [c for c in columns if pa.types.is_string(c.type)]
    numbers = [c.cast(pa.string()) for c in columns if not pa.types.is_string(c.type)]
    if len(texts) > 1:
        raise ValueError(f"one text key column at most: {names}")
    parts = [*numbers, *texts]
    if len(parts) == 1:
        return parts[0].combine_chunks()
    return pc.binary_join_element_wise(*parts, "\x1f").combine_chunks()


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


def value_before(values: np.ndarray, first: np.ndarray, from_state: np.ndarray) -> np.ndarray:
    """Each sorted row's previous value in its group; the state's for a group's first row."""
    shifted = np.roll(values, 1) if len(values) else values
    return np.where(first, from_state, shifted)
