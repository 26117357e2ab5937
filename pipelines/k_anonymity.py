"""k-anonymity over a release's quasi-identifiers: which rows may be published, generalized how.

A group is the rows sharing every published quasi-identifier value (cell, coarsened session
times). Its size is the number of distinct *people* in it, not of rows: five sessions of one
subscriber in one cell and hour are one person, and publishing them would single that person
out behind their (per-epoch) pseudonym. Small groups are generalized one step (timestamps to
a day, and the ingest time with them), then the rows of groups still below k are withheld.

Everything here is ``pyarrow.compute`` over whole columns: a release holds an hour of sessions.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from schemas.model import Privacy, TelemetrySchema
from schemas.published import FLAGS_FIELD, PrivacySettings, lineage_coarsening

_UNITS = {"min": "minute", "h": "hour", "d": "day"}


def floor_to(values: pa.Array, unit: str) -> pa.Array:
    """Timestamps floored to ``unit`` (``"1h"``, ``"1d"``, ``"15min"``)."""
    number = int("".join(c for c in unit if c.isdigit()) or 1)
    name = _UNITS[unit.lstrip("0123456789")]
    return pc.floor_temporal(values, multiple=number, unit=name)


def person_field(schema: TelemetrySchema) -> str | None:
    """The field naming the person a row is about: the schema's first identifier (a session's
    IMSI). k-anonymity counts distinct values of it."""
    return next((f.name for f in schema.fields if f.privacy is Privacy.IDENTIFIER), None)


def k_anonymous(
    schema: TelemetrySchema,
    columns: dict[str, pa.Array],
    settings: PrivacySettings,
    people: pa.Array | None = None,
) -> pa.Array:
    """Rows to publish: quasi-identifier groups of at least k people, generalizing before
    suppressing (``columns`` are the published ones, changed in place where generalized).

    ``people``: per row, who it is about (a keyed subscriber hash, or the raw identifier in
    memory); a null names nobody and adds no one to its group. None: each row is its own person.

    Groups are formed on the *published* values, per release (an event-time window): releases
    only add rows to a group when combined, so k-anonymity per release holds for the dataset.
    """
    quasi = [f for f in schema.fields if f.privacy is Privacy.QUASI_IDENTIFIER]
    n = len(columns[FLAGS_FIELD])
    if not quasi or not n:
        return pa.array([True] * n, pa.bool_())
    names = [f.name for f in quasi]
    small = pc.less(_sizes([columns[name] for name in names], people), settings.k)
    if pc.any(small).as_py():
        for f in quasi:
            if f.coarsen:  # generalize the rows of small groups one step further
                coarser = floor_to(columns[f.name], settings.generalize_to)
                columns[f.name] = pc.if_else(small, coarser, columns[f.name])
        if lineage_coarsening(schema) and "ingest_time" in columns:
            # An ingest time left at the hour would date a row generalized to the day.
            coarser = floor_to(columns["ingest_time"], settings.generalize_to)
            columns["ingest_time"] = pc.if_else(small, coarser, columns["ingest_time"])
        small = pc.less(_sizes([columns[name] for name in names], people), settings.k)
    return pc.invert(small)


def _sizes(keys: list[pa.Array], people: pa.Array | None) -> pa.Array:
    return group_sizes(keys) if people is None else distinct_people(keys, people)


def group_sizes(keys: list[pa.Array]) -> pa.Array:
    """For each row, how many rows share all its key values (nulls equal to nulls)."""
    if not len(keys[0]):
        return pa.array([], pa.int64())
    order, run_id = _groups(keys)
    lengths = pc.value_counts(run_id).field("counts")
    sizes = pc.take(lengths, pc.subtract(run_id, 1))
    return pc.take(sizes, pc.sort_indices(order))


def distinct_people(keys: list[pa.Array], people: pa.Array) -> pa.Array:
    """For each row, how many distinct non-null ``people`` share all its key values."""
    if not len(keys[0]):
        return pa.array([], pa.int64())
    order, run_id = _groups(keys)
    pairs = pa.table({"group": run_id, "person": pc.take(_array(people), order)})
    counted = pairs.group_by("group", use_threads=False).aggregate([("person", "count_distinct")])
    per_group = pc.take(  # groups are numbered 1.. in sorted order; aggregate's order is not
        counted.column("person_count_distinct").combine_chunks(),
        pc.sort_indices(counted.column("group")),
    )
    sizes = pc.take(per_group, pc.subtract(run_id, 1))
    return pc.take(sizes, pc.sort_indices(order))


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _groups(keys: list[pa.Array]) -> tuple[pa.Array, pa.Array]:
    """The rows' order sorted by their keys, and each sorted row's group number (from 1)."""
    table = pa.table({str(i): k for i, k in enumerate(keys)})
    order = pc.sort_indices(table, [(str(i), "ascending") for i in range(len(keys))])
    same = pa.array([False] + [True] * (len(order) - 1), pa.bool_())
    for k in keys:
        v = pc.take(_array(k), order)
        prev = pa.concat_arrays([pa.nulls(1, v.type), v.slice(0, len(v) - 1)])
        equal = pc.fill_null(pc.equal(v, prev), False)
        both_null = pc.and_(pc.is_null(v), pc.is_null(prev))
        both_null = pc.and_(both_null, same)  # row 0's "previous" is no row
        same = pc.and_(same, pc.or_(equal, both_null))
    return order, pc.cumulative_sum(pc.invert(same).cast(pa.int64()))
