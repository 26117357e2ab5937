"""Row checks derived from schema metadata: required fields, finite numbers, valid ranges, and
groups of fields of which a row holds at least one.

Vectorized with ``pyarrow.compute``: each check yields a failure mask over the whole batch, and
every failing row gets the reason of the first check it fails, so no row is rejected without one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from schemas.model import Field, TelemetrySchema
from schemas.records import echoed

# The largest integer a published row's leaf holds exactly (proof-format §2, I-JSON: RFC 7493).
MAX_SAFE_INT = 2**53 - 1


@dataclass(frozen=True)
class RowCheckResult:
    """``valid[i]`` is True for rows that passed; ``codes``/``reasons`` are null exactly there."""

    valid: pa.BooleanArray
    codes: pa.StringArray
    reasons: pa.StringArray

    @property
    def rejected(self) -> int:
        return len(self.valid) - pc.sum(self.valid).as_py() if len(self.valid) else 0


def check_rows(schema: TelemetrySchema, rows: pa.RecordBatch) -> RowCheckResult:
    """Check ``rows`` (canonical names) against ``schema``'s required flags, ranges and
    "at least one of" groups."""
    codes, reasons = first_failures(rows.num_rows, _checks(schema, rows))
    return RowCheckResult(valid=pc.is_null(codes), codes=codes, reasons=reasons)


def _checks(schema: TelemetrySchema, rows: pa.RecordBatch) -> Iterator[Check]:
    for field in schema.all_fields:
        column = rows.column(field.name)
        for code, failed, describe in _field_checks(field, column):
            yield code, failed, functools.partial(_failing, column, describe)
    for code, failed, column, describe in _group_checks(schema, rows):
        yield code, failed, functools.partial(_failing, column, describe)


# A check: its code, its failure mask (a null is no failure), and the reasons of the rows a
# mask selects.
Check = tuple[str, pa.Array, Callable[[pa.Array], pa.Array]]


def first_failures(rows: int, checks: Iterable[Check]) -> tuple[pa.StringArray, pa.StringArray]:
    """Each row's code and reason from the first of ``checks`` it fails; null where none."""
    codes = pa.nulls(rows, pa.string())
    reasons = pa.nulls(rows, pa.string())
    marked = False  # any row given a code yet
    for code, failed, reasons_of in checks:
        # A check no row fails costs one call: a chunk runs ~70 checks per dataset, and
        # Arrow's per-call overhead, not the rows, was most of a small batch's checking.
        if not pc.any(failed).as_py():
            continue
        first = pc.fill_null(failed, False)
        if marked:
            first = pc.and_(first, pc.is_null(codes))
        count = pc.sum(first).as_py() or 0
        if not count:
            continue
        marked = True
        # Reasons are formatted for the failing rows only: clean batches pay nothing.
        codes = pc.replace_with_mask(codes, first, pa.array([code] * count, pa.string()))
        reasons = pc.replace_with_mask(reasons, first, reasons_of(first))
    return codes, reasons


def _failing(column: pa.Array, describe: Describe, mask: pa.Array) -> pa.Array:
    return describe(pc.filter(column, mask))


def _group_checks(
    schema: TelemetrySchema, rows: pa.RecordBatch
) -> Iterator[tuple[str, pa.Array, pa.Array, Describe]]:
    """Rows holding none of a group's fields (``TelemetrySchema.at_least_one``)."""
    for group in schema.at_least_one:
        none = functools.reduce(pc.and_, [pc.is_null(rows.column(name)) for name in group])
        message = f"one of {', '.join(group)} is required, but none is present"
        yield "missing_required", none, none, lambda v, m=message: pa.array([m] * len(v))


Describe = Callable[[pa.Array], pa.Array]


def _field_checks(field: Field, column: pa.Array) -> Iterator[tuple[str, pa.Array, Describe]]:
    """Yield (code, failure mask, how to describe the failing values) for one field."""
    if field.required:
        message = f"{field.name} is required but missing"
        yield "missing_required", pc.is_null(column), lambda v: pa.array([message] * len(v))
    if field.allowed is not None:
        allowed = ", ".join(field.allowed)
        listed = pc.is_in(column, value_set=pa.array(field.allowed, column.type))
        unknown = pc.and_(pc.is_valid(column), pc.invert(listed))  # a null is no value: allowed
        yield "not_allowed", unknown, lambda v: _with_value(field, v, f" is not one of: {allowed}")
    yield from _json_number_checks(field, column)
    if field.minimum is None and field.maximum is None:
        return
    if _within(column, field.minimum, field.maximum):  # one pass, no mask, for clean columns
        return
    too_low = pc.less(column, field.minimum) if field.minimum is not None else None
    too_high = pc.greater(column, field.maximum) if field.maximum is not None else None
    outside = (
        too_low if too_high is None else too_high if too_low is None else pc.or_(too_low, too_high)
    )
    bounds = _bounds(field)
    yield "out_of_range", outside, lambda v: _with_value(field, v, f" is outside {bounds}")


def _json_number_checks(field: Field, column: pa.Array) -> Iterator[tuple[str, pa.Array, Describe]]:
    """Numbers a published row's leaf cannot hold (proof-format §2: I-JSON): NaN and infinities,
    and integers beyond ±(2^53 − 1), in a column or inside a list column. A schema's range may
    say nothing of them, and a row that passed would stop its batch where its leaf is encoded."""
    values, parents = column, None
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        values, parents = pc.list_flatten(column), pc.list_parent_indices(column)
    if pa.types.is_floating(values.type):
        code, bad, why = "not_finite", pc.invert(pc.is_finite(values)), " is not a finite number"
    elif pa.types.is_integer(values.type) and not _within(values, -MAX_SAFE_INT, MAX_SAFE_INT):
        code, why = "out_of_range", f" is beyond ±{MAX_SAFE_INT:,}, what JSON carries exactly"
        bad = pc.greater(values, MAX_SAFE_INT)
        if pa.types.is_signed_integer(values.type):
            bad = pc.or_(bad, pc.less(values, -MAX_SAFE_INT))
    else:
        return
    if parents is None:
        yield code, bad, lambda v: _with_value(field, v, why)
        return
    # A row fails when any element of its list does; its reason names the list, not the value.
    failing = pc.unique(pc.filter(parents, pc.fill_null(bad, False)))
    bad = pc.is_in(pa.array(range(len(column)), parents.type), value_set=failing)
    message = f"{field.name} holds a number that{why}"
    yield code, bad, lambda v: pa.array([message] * len(v))


def _within(column: pa.Array, minimum: float | None, maximum: float | None) -> bool:
    """Whether no value of ``column`` is below ``minimum`` or above ``maximum``: its extremes
    say so (nulls and NaNs, which no bound check fails, are not among them)."""
    extremes = pc.min_max(column).as_py()
    low, high = extremes["min"], extremes["max"]
    if low is None or low != low:  # no value, or only NaNs
        return True
    return (minimum is None or low >= minimum) and (maximum is None or high <= maximum)


def _with_value(field: Field, values: pa.Array, suffix: str) -> pa.Array:
    return pc.binary_join_element_wise(f"{field.name}=", echoed(values), suffix, "")


def _bounds(field: Field) -> str:
    low = "-inf" if field.minimum is None else f"{field.minimum:g}"
    high = "+inf" if field.maximum is None else f"{field.maximum:g}"
    unit = f" {field.unit}" if field.unit else ""
    return f"[{low}, {high}]{unit}"
