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

``leaf_bytes_for_batch`` encodes column by column (one vectorized conversion per column, in
``proofs.leaf_columns``, then one string join per row) because it is on the publishing hot path.
``row_to_jcs_value`` is the same encoding written value by value for a single row: simple
enough to re-implement from this docstring, and used by the tests as the reference the fast
path must match byte for byte. Both follow the type rules and limits of ``proofs.leaf_rules``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from proofs.jcs import MAX_SAFE_INTEGER, utf16_sort_key
from proofs.leaf_columns import encode_member, join_objects
from proofs.leaf_rules import (
    LeafEncodingError,
    base64url,
    check_unique,
    check_utc,
    float_problem,
    int_problem,
    is_binary,
    is_list,
    is_string,
    nanos_problem,
)
from proofs.merkle import leaf_hashes

__all__ = [
    "decoding_problem",
    "leaf_bytes_for_batch",
    "leaf_hashes_for_batch",
    "open_parquet",
    "parquet_leaf_hashes",
    "row_to_jcs_value",
]

_SLICE_ROWS = 1 << 16  # rows encoded at a time: bounds memory and keeps string offsets 32-bit
MAX_FOOTER_BYTES = 16 << 20  # a Parquet footer read from an untrusted folder, at most
# What one row group of an untrusted file may hold, from its footer, before any of it is
# decoded: a row has no size of its own (953 bytes of Parquet held 5 rows of 10 million list
# elements, ~1.5 GB once leaf-encoded, ~30 bytes a value). Published rows hold a few dozen
# values (lists of traceroute hops the most: hundreds), and the pipeline's row groups at most
# 131,072 rows. The footer's counts are taken at their word (a hand-made footer could lie).
MAX_VALUES_PER_ROW = 4096  # on average over a row group, every column and list element counted
MAX_ROW_GROUP_VALUES = 1 << 25
MAX_ROW_GROUP_BYTES = 1 << 30  # uncompressed, as the footer says


def leaf_bytes_for_batch(batch: pa.RecordBatch | pa.Table, first_row: int = 0) -> list[bytes]:
    """Return the leaf bytes (JCS of ``{column name: value}``) of every row, in row order.
    ``first_row``: the number of the batch's first row, as errors name rows."""
    names = batch.schema.names
    check_unique(names, "column names")
    order = sorted(range(len(names)), key=lambda i: utf16_sort_key(names[i]))
    sorted_names = [names[i] for i in order]
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    leaves: list[bytes] = []
    for start in range(0, table.num_rows, _SLICE_ROWS):
        part = table.slice(start, _SLICE_ROWS).combine_chunks()
        row = first_row + start
        members = [encode_member(part.column(i).chunk(0), names[i], row) for i in order]
        objects = join_objects(sorted_names, members, part.num_rows)
        leaves.extend(objects.cast(pa.binary()).to_pylist())
    return leaves


def leaf_hashes_for_batch(batch: pa.RecordBatch | pa.Table, first_row: int = 0) -> list[bytes]:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || leaf bytes)`` of every row."""
    return leaf_hashes(leaf_bytes_for_batch(batch, first_row))


def open_parquet(path: Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` (a context manager), its footer's size checked first:
    the footer (schema, row groups, their statistics) is parsed whole, and a published file's
    is a few KB; an untrusted file's could take gigabytes. ``ValueError`` over
    ``MAX_FOOTER_BYTES``. Its row count (``metadata.num_rows``) is then known, unread."""
    import pyarrow.parquet as pq

    from proofs.documents import open_untrusted

    with open_untrusted(path) as file:  # a named pipe would block pyarrow's opening
        size = file.seek(0, 2)
        file.seek(max(size - 8, 0))
        tail = file.read(8)  # the footer's length (4 bytes, little-endian), then "PAR1"
    length = int.from_bytes(tail[:4], "little")
    if tail[4:] == b"PAR1" and length > MAX_FOOTER_BYTES:
        raise ValueError(f"its footer is {length:,} bytes, over {MAX_FOOTER_BYTES:,}: not read")
    return pq.ParquetFile(path)


def parquet_leaf_hashes(parquet: Any) -> Iterator[list[bytes]]:
    """The leaf hashes of an open Parquet file's rows (``open_parquet``), in row order,
    ``_SLICE_ROWS`` rows at a time.

    Reading a file costs the memory of one such slice, whatever the file holds: a file from an
    untrusted folder can hold far more rows than its size suggests (58 KB of Parquet held five
    million rows of one repeated value, 1.3 GB once read whole and hashed)."""
    problem = decoding_problem(parquet.metadata)
    if problem is not None:
        raise ValueError(problem)
    first_row = 0
    for batch in parquet.iter_batches(batch_size=_SLICE_ROWS):
        yield leaf_hashes_for_batch(batch, first_row)
        first_row += batch.num_rows


def decoding_problem(metadata: Any) -> str | None:
    """Why a Parquet file (its ``metadata``, the footer) is not decoded: a row group holding
    more values or bytes than ``MAX_VALUES_PER_ROW``, ``MAX_ROW_GROUP_VALUES`` and
    ``MAX_ROW_GROUP_BYTES`` allow; None when every row group is within them."""
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        chunks = [group.column(c) for c in range(group.num_columns)]
        values = sum(chunk.num_values for chunk in chunks)
        size = sum(chunk.total_uncompressed_size for chunk in chunks)
        most = min(MAX_ROW_GROUP_VALUES, max(group.num_rows, 1) * MAX_VALUES_PER_ROW)
        if values > most or size > MAX_ROW_GROUP_BYTES:
            return (
                f"row group {index} holds {values:,} values ({size:,} bytes) in "
                f"{group.num_rows:,} rows, over the verifier's bound of {most:,} values and "
                f"{MAX_ROW_GROUP_BYTES:,} bytes: not decoded"
            )
    return None


def row_to_jcs_value(row: Mapping[str, object], schema: pa.Schema) -> dict[str, object]:
    """Return the JSON value of one row, as given by ``pa.Table.to_pylist()`` for ``schema``.

    ``canonicalize(row_to_jcs_value(row, schema))`` equals the leaf bytes of that row; this is
    the value-by-value reference of the encoding in the module docstring.
    """
    check_unique(schema.names, "column names")
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
            raise LeafEncodingError(column, int_problem(value))
        return int(value)
    if pa.types.is_floating(typ):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise LeafEncodingError(column, float_problem(number))
        return number
    if is_string(typ):
        return value
    if is_binary(typ):
        return base64url(value)
    if pa.types.is_timestamp(typ):
        check_utc(typ, column)
        return _timestamp_text(value, column)
    if pa.types.is_date(typ):
        return value.isoformat()
    if pa.types.is_decimal(typ):
        return format(value, "f")
    if is_list(typ):
        return [_to_jcs(item, typ.value_type, column + "[]") for item in value]
    if pa.types.is_struct(typ):
        fields = [typ.field(i) for i in range(typ.num_fields)]
        check_unique([f.name for f in fields], f"field names of {column!r}")
        return {f.name: _to_jcs(value.get(f.name), f.type, f"{column}.{f.name}") for f in fields}
    if pa.types.is_null(typ):
        return None
    raise LeafEncodingError(column, f"Arrow type {typ} has no leaf encoding")


def _timestamp_text(value: Any, column: str) -> str:
    if getattr(value, "nanosecond", 0):  # pandas.Timestamp from a ns column
        raise LeafEncodingError(column, nanos_problem())
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )
