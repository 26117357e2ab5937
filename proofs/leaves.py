"""Leaf encoding of published rows: leaf bytes = RFC 8785 (JCS) canonical JSON of the row.

Each published row becomes one JSON object mapping every column name to its value (a null
value is written as ``null``; no column is ever omitted), canonicalized by RFC 8785 (members
sorted by UTF-16 code units, no whitespace, UTF-8). Its Merkle leaf hash is RFC 9162
``SHA-256(0x00 || leaf bytes)`` (see ``proofs.merkle``). Values are encoded by Arrow type:

=====================================  =========================================================
Arrow type                             JSON value
=====================================  =========================================================
null, or any null value                ``null``
bool                                   ``true`` / ``false``
int8..int64, uint8..uint64             number; error if beyond +-(2**53 - 1) (I-JSON)
float16, float32, float64              number: the value converted exactly to an IEEE double,
                                       printed as ECMAScript does (RFC 8785 3.2.2.3), so
                                       float32 ``0.1`` is ``0.10000000149011612``; ``-0.0`` is
                                       ``0``; error for NaN and +-Infinity
string, large_string, string_view      string
binary, large_binary, binary_view,     string: base64url (RFC 4648 section 5) without ``=``
fixed_size_binary                      padding, e.g. bytes ``fb ff`` -> ``"-_8"``
timestamp (s, ms, us, ns)              string, RFC 3339 UTC with exactly 6 fractional digits:
                                       ``"2026-11-25T01:02:03.000000Z"``. The time zone must be
                                       absent (read as UTC) or UTC (``UTC``, ``Etc/UTC``, ``Z``,
                                       ``+00:00``). Error for nanoseconds that are not whole
                                       microseconds (they would be lost) and for years outside
                                       0001..9999
date32, date64                         string ``"YYYY-MM-DD"``; years 0001..9999
decimal32/64/128/256                   string of the exact decimal in positional notation with
                                       exactly ``max(scale, 0)`` fractional digits: ``"-1.2300"``
                                       for decimal(10, 4), ``"12300"`` for scale -2
list, large_list, fixed_size_list      array of the encoded elements
struct                                 object of field name -> encoded value
dictionary                             the encoded dictionary value (the index is not published)
anything else (time, duration, map,    error: give the column a supported type before
union, interval, extension, ...)       publishing
=====================================  =========================================================

Errors are ``LeafEncodingError`` (a ``ValueError``) naming the column (``a.b`` for a struct
field, ``a[]`` for list elements) and, for top-level values, the row.

``leaf_bytes_for_batch`` encodes column by column (one vectorized conversion per column, then
one string join per row) because it is on the publishing hot path. ``row_to_jcs_value`` is the
same encoding written value by value for a single row: simple enough to re-implement from this
docstring, and used by the tests as the reference the fast path must match byte for byte.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from proofs.jcs import (
    MAX_SAFE_INTEGER,
    serialize_number,
    serialize_string,
    utf16_sort_key,
)
from proofs.merkle import leaf_hashes

__all__ = [
    "LeafEncodingError",
    "leaf_bytes_for_batch",
    "leaf_hashes_for_batch",
    "row_to_jcs_value",
]

UTC_TIMEZONES = frozenset({"UTC", "Etc/UTC", "Z", "+00:00"})
"""Arrow timestamp time zone names accepted as UTC (a missing time zone is read as UTC)."""

_MIN_MICROS = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z in microseconds since the epoch
_MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
_MIN_DAYS = -719_162  # 0001-01-01 in days since the epoch
_MAX_DAYS = 2_932_896  # 9999-12-31


class LeafEncodingError(ValueError):
    """A published value has no leaf encoding. ``column`` names it; ``row`` is set if known."""

    def __init__(self, column: str, problem: str, row: int | None = None) -> None:
        self.column = column
        self.row = row
        where = f"column {column!r}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {problem}")


def leaf_bytes_for_batch(batch: pa.RecordBatch | pa.Table) -> list[bytes]:
    """Return the leaf bytes (JCS of ``{column name: value}``) of every row, in row order."""
    names = batch.schema.names
    _check_unique(names, "column names")
    order = sorted(range(len(names)), key=lambda i: utf16_sort_key(names[i]))
    sorted_names = [names[i] for i in order]
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    leaves: list[bytes] = []
    for first_row in range(0, table.num_rows, _SLICE_ROWS):
        part = table.slice(first_row, _SLICE_ROWS).combine_chunks()
        columns = [_encode(part.column(i).chunk(0), names[i], first_row) for i in order]
        objects = _join_objects(sorted_names, columns, part.num_rows)
        leaves.extend(objects.cast(pa.binary()).to_pylist())
    return leaves


def leaf_hashes_for_batch(batch: pa.RecordBatch | pa.Table) -> list[bytes]:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || leaf bytes)`` of every row."""
    return leaf_hashes(leaf_bytes_for_batch(batch))


def row_to_jcs_value(row: Mapping[str, object], schema: pa.Schema) -> dict[str, object]:
    """Return the JSON value of one row, as given by ``pa.Table.to_pylist()`` for ``schema``.

    ``canonicalize(row_to_jcs_value(row, schema))`` equals the leaf bytes of that row; this is
    the value-by-value reference of the encoding in the module docstring.
    """
    _check_unique(schema.names, "column names")
    if set(row) != set(schema.names):
        missing, extra = set(schema.names) - set(row), set(row) - set(schema.names)
        raise ValueError(
            f"row does not match the schema: missing {missing or '{}'}, extra {extra or '{}'}"
        )
    return {f.name: _to_jcs(row[f.name], f.type, f.name) for f in schema}


# -- value by value (reference) ---------------------------------------------------------------


def _to_jcs(value: Any, typ: pa.DataType, column: str) -> Any:
    if value is None:
        return None
    if pa.types.is_dictionary(typ):
        return _to_jcs(value, typ.value_type, column)
    if pa.types.is_boolean(typ):
        return bool(value)
    if pa.types.is_integer(typ):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise LeafEncodingError(column, _int_problem(value))
        return int(value)
    if pa.types.is_floating(typ):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise LeafEncodingError(column, _float_problem(number))
        return number
    if _is_string(typ):
        return value
    if _is_binary(typ):
        return _base64url(value)
    if pa.types.is_timestamp(typ):
        _check_utc(typ, column)
        return _timestamp_text(value, column)
    if pa.types.is_date(typ):
        return value.isoformat()
    if pa.types.is_decimal(typ):
        return format(value, "f")
    if _is_list(typ):
        return [_to_jcs(item, typ.value_type, column + "[]") for item in value]
    if pa.types.is_struct(typ):
        fields = [typ.field(i) for i in range(typ.num_fields)]
        _check_unique([f.name for f in fields], f"field names of {column!r}")
        return {f.name: _to_jcs(value.get(f.name), f.type, f"{column}.{f.name}") for f in fields}
    if pa.types.is_null(typ):
        return None
    raise LeafEncodingError(column, f"Arrow type {typ} has no leaf encoding")


def _timestamp_text(value: Any, column: str) -> str:
    if getattr(value, "nanosecond", 0):  # pandas.Timestamp from a ns column
        raise LeafEncodingError(column, _nanos_problem())
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


# -- column by column (hot path) --------------------------------------------------------------
#
# Every encoder maps an Arrow array to a string array of the JSON text of each slot ("null" for
# null slots), using Arrow compute kernels where their output is exactly the JCS text and
# Python only where it is not. ``first_row`` is the row of slot 0 for a top-level column (to
# name it in errors), None inside nested values.

_SLICE_ROWS = 1 << 16  # rows encoded at a time: bounds memory and keeps string offsets 32-bit


def _encode(arr: pa.Array, column: str, first_row: int | None) -> pa.Array:
    typ = arr.type
    if pa.types.is_dictionary(typ):
        return _encode(arr.dictionary_decode(), column, first_row)
    if pa.types.is_null(typ):
        return pa.array(["null"] * len(arr), pa.string())
    if pa.types.is_boolean(typ):
        return _or_null(pc.if_else(arr, "true", "false"))
    if pa.types.is_integer(typ):
        return _encode_integers(arr, column, first_row)
    if pa.types.is_floating(typ):
        return _encode_floats(arr, column, first_row)
    if _is_string(typ):
        return _encode_strings(arr)
    if _is_binary(typ):
        return _python_texts(arr, lambda v: '"' + _base64url(v) + '"')
    if pa.types.is_timestamp(typ):
        return _encode_timestamps(arr, column, first_row)
    if pa.types.is_date(typ):
        return _encode_dates(arr, column, first_row)
    if pa.types.is_decimal(typ):
        # Arrow prints some decimals in exponent form ("1E-30"); format(Decimal, "f") never does.
        return _python_texts(arr, lambda v: '"' + format(v, "f") + '"')
    if _is_list(typ):
        return _encode_lists(arr, column)
    if pa.types.is_struct(typ):
        return _encode_structs(arr, column)
    raise LeafEncodingError(column, f"Arrow type {typ} has no leaf encoding")


def _or_null(texts: pa.Array) -> pa.Array:
    return pc.fill_null(texts, "null")


def _quoted(texts: pa.Array) -> pa.Array:
    return _or_null(pc.binary_join_element_wise('"', texts, '"', ""))


def _python_texts(arr: pa.Array, encode: Callable[[Any], str]) -> pa.Array:
    return pa.array([encode(v) if v is not None else "null" for v in arr.to_pylist()], pa.string())


def _encode_integers(arr: pa.Array, column: str, first_row: int | None) -> pa.Array:
    low, high = (s.as_py() for s in pc.min_max(arr).values())
    if low is not None and (low < -MAX_SAFE_INTEGER or high > MAX_SAFE_INTEGER):
        values = arr.to_pylist()
        i = next(i for i, v in enumerate(values) if v is not None and abs(v) > MAX_SAFE_INTEGER)
        raise LeafEncodingError(column, _int_problem(values[i]), _row(first_row, i))
    return _or_null(arr.cast(pa.string()))  # decimal digits, as ECMAScript prints safe integers


def _encode_floats(arr: pa.Array, column: str, first_row: int | None) -> pa.Array:
    doubles = arr.cast(pa.float64())  # exact for float16 and float32
    if pc.all(pc.is_finite(doubles)).as_py() is False:  # None when every value is null
        values = doubles.to_pylist()
        i = next(i for i, v in enumerate(values) if v is not None and not _finite(v))
        raise LeafEncodingError(column, _float_problem(values[i]), _row(first_row, i))
    if not _arrow_float_text_is_ecmascript():
        return _python_texts(doubles, serialize_number)
    # Arrow prints the shortest round-trip digits, as ECMAScript does, and agrees with it on the
    # layout except for "-0" and its exponent form ("1e+20", "1.5e+12"); redo those in Python.
    texts = doubles.cast(pa.string())
    redo = pc.or_(pc.match_substring(texts, "e"), pc.equal(texts, "-0"))
    if pc.any(redo).as_py():
        values, fixed = doubles.to_pylist(), texts.to_pylist()
        for i in pc.indices_nonzero(pc.fill_null(redo, False)).to_pylist():
            fixed[i] = serialize_number(values[i])
        texts = pa.array(fixed, pa.string())
    return _or_null(texts)


def _encode_strings(arr: pa.Array) -> pa.Array:
    texts = arr.cast(pa.string())
    if pc.any(pc.match_substring_regex(texts, _NEEDS_ESCAPE)).as_py():
        return _python_texts(texts, serialize_string)
    return _quoted(texts)


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # the characters RFC 8785 3.2.2.2 escapes


def _encode_timestamps(arr: pa.Array, column: str, first_row: int | None) -> pa.Array:
    _check_utc(arr.type, column)
    try:
        micros = arr.cast(pa.timestamp("us"))  # drops the (UTC) zone; refuses to lose nanos
    except pa.ArrowInvalid:
        nanos = arr.cast(pa.int64()).to_pylist()
        i = next(i for i, v in enumerate(nanos) if v is not None and v % 1000)
        raise LeafEncodingError(column, _nanos_problem(), _row(first_row, i)) from None
    ints = micros.cast(pa.int64())
    low, high = (s.as_py() for s in pc.min_max(ints).values())
    if low is not None and (low < _MIN_MICROS or high > _MAX_MICROS):
        values = ints.to_pylist()
        i = next(
            i for i, v in enumerate(values) if v is not None and _out(v, _MIN_MICROS, _MAX_MICROS)
        )
        raise LeafEncodingError(column, "timestamp outside years 0001..9999", _row(first_row, i))
    # Arrow prints timestamp[us] as "YYYY-MM-DD HH:MM:SS.ffffff".
    texts = pc.utf8_replace_slice(micros.cast(pa.string()), 10, 11, "T")
    return _or_null(pc.binary_join_element_wise('"', texts, 'Z"', ""))


def _encode_dates(arr: pa.Array, column: str, first_row: int | None) -> pa.Array:
    days = arr.cast(pa.date32())
    ints = days.cast(pa.int32())
    low, high = (s.as_py() for s in pc.min_max(ints).values())
    if low is not None and (low < _MIN_DAYS or high > _MAX_DAYS):
        values = ints.to_pylist()
        i = next(i for i, v in enumerate(values) if v is not None and _out(v, _MIN_DAYS, _MAX_DAYS))
        raise LeafEncodingError(column, "date outside years 0001..9999", _row(first_row, i))
    return _quoted(days.cast(pa.string()))  # "YYYY-MM-DD"


def _encode_lists(arr: pa.Array, column: str) -> pa.Array:
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        size = arr.type.list_size
        offsets = [(arr.offset + i) * size for i in range(n + 1)]
    else:
        offsets = arr.offsets.to_pylist()
    start = offsets[0]
    items = _encode(arr.values.slice(start, offsets[-1] - start), column + "[]", None).to_pylist()
    valid = arr.is_valid().to_pylist()
    texts = [
        "[" + ",".join(items[offsets[i] - start : offsets[i + 1] - start]) + "]"
        if valid[i]
        else "null"
        for i in range(n)
    ]
    return pa.array(texts, pa.string())


def _encode_structs(arr: pa.StructArray, column: str) -> pa.Array:
    typ = arr.type
    names = [typ.field(i).name for i in range(typ.num_fields)]
    _check_unique(names, f"field names of {column!r}")
    children = arr.flatten()  # applies the array's offset
    order = sorted(range(len(names)), key=lambda i: utf16_sort_key(names[i]))
    fields = [_encode(children[i], f"{column}.{names[i]}", None) for i in order]
    objects = _join_objects([names[i] for i in order], fields, len(arr))
    return pc.if_else(arr.is_valid(), objects, "null")


def _join_objects(sorted_names: list[str], columns: list[pa.Array], n: int) -> pa.Array:
    """Join member texts into one JSON object text per row (names already in JCS order)."""
    if not sorted_names:
        return pa.array(["{}"] * n, pa.string())
    parts: list[str | pa.Array] = []
    for j, (name, texts) in enumerate(zip(sorted_names, columns, strict=True)):
        parts.append(("{" if j == 0 else ",") + serialize_string(name) + ":")
        parts.append(texts)
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


_float_text_check: bool | None = None


def _arrow_float_text_is_ecmascript() -> bool:
    """Check once that Arrow's float64 -> string cast prints these samples as ECMAScript does
    (ignoring exponent forms, which are redone in Python); otherwise use Python for floats."""
    global _float_text_check
    if _float_text_check is None:
        samples = [0.1, 0.000001, 4.5, 100.0, -2.5, 333333333.3333333, 1.0000000000000002]
        samples += [123456.789, 0.30000000000000004, 9007199254740991.0, 0.001953125]
        texts = pa.array(samples, pa.float64()).cast(pa.string()).to_pylist()
        _float_text_check = all(
            "e" in t or t == serialize_number(x) for x, t in zip(samples, texts, strict=True)
        )
    return _float_text_check


# -- shared helpers ---------------------------------------------------------------------------


def _is_string(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or _is(typ, "string_view")


def _is_binary(typ: pa.DataType) -> bool:
    return (
        pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_fixed_size_binary(typ)
        or _is(typ, "binary_view")
    )


def _is_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)


def _is(typ: pa.DataType, name: str) -> bool:
    check = getattr(pa.types, f"is_{name}", None)
    return bool(check and check(typ))


def _base64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def _check_utc(typ: pa.TimestampType, column: str) -> None:
    if typ.tz is not None and typ.tz not in UTC_TIMEZONES:
        raise LeafEncodingError(
            column, f"timestamp time zone {typ.tz!r} is not UTC; convert to UTC before publishing"
        )


def _check_unique(names: list[str], what: str) -> None:
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate {what} {duplicates}: a JSON object needs unique names")


def _out(value: int, low: int, high: int) -> bool:
    return not low <= value <= high


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def _row(first_row: int | None, index: int) -> int | None:
    return None if first_row is None else first_row + index


def _int_problem(value: object) -> str:
    return f"integer {value} is outside the I-JSON range +-(2**53 - 1)"


def _float_problem(value: float) -> str:
    return f"{value} is not a JSON number (NaN and Infinity cannot be published)"


def _nanos_problem() -> str:
    return "timestamp has nanoseconds that are not whole microseconds (leaves keep 6 digits)"
