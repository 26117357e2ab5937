"""Decoding JSON messages in bulk: Arrow's C++ reader first, a per-message screen when needed.

Clean batches take a vectorized path: the messages are joined into newline-delimited JSON and
parsed by Arrow's JSON reader against an explicit schema — several times faster than
``json.loads`` per message. A batch that fails there (one bad message fails the whole block) is
screened message by message to give each bad record its own reason, and the good ones go back
through the vectorized path. Adapters describe their wire format as a ``WireTable``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from schemas.adapters.base import MAX_MESSAGE_BYTES
from schemas.records import bounded_reason

NUMBER = (int, float)
# One thread per parse. A run lands in two children at once, or in one while it sequences the
# batch before: Arrow's pool then only competes with them for the cores, and adds ~10 % of CPU
# to the same parse (50,000 node messages: 243 against 267 CPU-ms). Measured on 2 cores, in
# alternated pairs: `rda run --once` over 221,567 records, median 6.86 -> 6.50 s (8 pairs); one
# batch of 206,120 3.14 -> 3.0 s, eight 5.01 -> 4.80 s (4 pairs). More cores take more workers
# (`--join-group`), each with its own landing children.
READ_OPTIONS = pajson.ReadOptions(use_threads=False)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Each message goes to Arrow's reader as the member of an object that numbers it, one per line
# (``_numbered_lines``): its rows must then be those numbers in order. Arrow's reader reads
# what follows a line's end as more of the same value, and two objects on one line as two
# rows, so a node could shift its neighbours' records onto other rows and offsets with the
# count kept (a message of two objects, one cut open, one closing it): now such a line is not
# JSON, and the block goes to the per-message screen.
_ROW, _MESSAGE = "_rda_row", "_rda_message"


@dataclass(frozen=True)
class WireTable:
    """A JSON wire format: field path -> (JSON types accepted, Arrow type to parse as).

    Paths have one element (top level) or two (a member of a top-level object).
    """

    fields: dict[tuple[str, ...], tuple[tuple[type, ...], pa.DataType]]
    arrow_schema: pa.Schema = field(init=False)
    parse_options: pajson.ParseOptions = field(init=False)
    type_table: tuple = field(init=False)

    def __post_init__(self) -> None:
        top: list[pa.Field] = []
        groups: dict[str, list[pa.Field]] = {}
        checks: dict[str | None, list[tuple[str, frozenset[type]]]] = {None: []}
        for path, (json_types, arrow_type) in self.fields.items():
            group = path[0] if len(path) == 2 else None
            if group is None:
                top.append(pa.field(path[0], arrow_type))
            else:
                groups.setdefault(group, []).append(pa.field(path[1], arrow_type))
            checks.setdefault(group, []).append((path[-1], frozenset(json_types)))
        schema = pa.schema(top + [pa.field(g, pa.struct(fs)) for g, fs in groups.items()])
        numbered = pa.schema([(_ROW, pa.int64()), (_MESSAGE, pa.struct(list(schema)))])
        options = pajson.ParseOptions(
            explicit_schema=numbered, unexpected_field_behavior="ignore", newlines_in_values=False
        )
        object.__setattr__(self, "arrow_schema", schema)
        object.__setattr__(self, "parse_options", options)
        object.__setattr__(self, "type_table", tuple((g, tuple(fs)) for g, fs in checks.items()))

    def empty(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pylist([], schema=self.arrow_schema)


@dataclass
class Screened:
    """Parsed wire rows with their raw positions, and the positions rejected on the way."""

    wire: pa.RecordBatch
    positions: list[int]
    rejected: list[int] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def reject(self, position: int, code: str, reason: str) -> None:
        self.rejected.append(position)
        self.codes.append(code)
        self.reasons.append(reason)


class Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        reason = bounded_reason(reason)  # it may quote the record: a 4,300-digit number
        super().__init__(reason)
        self.code, self.reason = code, reason


def decode_json_messages(values: pa.Array, table: WireTable) -> Screened:
    """Parse every message of ``values``; each one is parsed or rejected with a reason."""
    result = Screened(table.empty(), [])
    candidates = _prescreen(values, result)
    candidates = _objects_for_arrow(values, candidates, table, result)
    parsed = _parse_block(values, candidates, table)
    if parsed is not None:
        parsed, candidates = _without_constants(values, parsed, candidates, table, result)
    else:
        candidates = _screen_messages(values, candidates, table, result)
        parsed = _parse_block(values, candidates, table, compact=True)
        if parsed is None:  # a message our screen passed but Arrow refused: isolate it
            candidates, parsed = _parse_one_by_one(values, candidates, table, result)
    result.wire, result.positions = parsed, candidates
    return result


def _prescreen(values: pa.Array, result: Screened) -> list[int]:
    """Reject tombstones, empty and oversized messages without looking inside them."""
    lengths = pc.binary_length(values)
    odd = pc.or_(pc.equal(lengths, 0), pc.greater(lengths, MAX_MESSAGE_BYTES))
    if not pc.any(pc.fill_null(odd, True)).as_py():  # the usual batch: every message a candidate
        return list(range(len(values)))
    candidates = []
    for position, length in enumerate(lengths.to_pylist()):
        if length is None:
            result.reject(position, "tombstone", "record has a null value (Kafka tombstone)")
        elif length == 0:
            result.reject(position, "empty_message", "record value is empty")
        elif length > MAX_MESSAGE_BYTES:
            limit = f"over the {MAX_MESSAGE_BYTES} byte limit"
            result.reject(position, "too_large", f"message is {length} bytes, {limit}")
        else:
            candidates.append(position)
    return candidates


def _objects_for_arrow(
    values: pa.Array, candidates: list[int], table: WireTable, result: Screened
) -> list[int]:
    """Only objects go to Arrow's reader (a block holding nothing but ``null`` crashes it,
    SIGSEGV, pyarrow 25); the others are screened, so refused, one by one at once."""
    if not candidates:
        return candidates
    chosen = values.take(pa.array(candidates, pa.int64()))
    opens = pc.starts_with(chosen, "{")
    if pc.all(opens).as_py():
        return candidates
    opens = pc.or_(opens, pc.match_substring_regex(chosen, r"^\s*\{")).to_pylist()
    _screen_messages(values, [p for p, ok in zip(candidates, opens, strict=True) if not ok],
                     table, result)  # fmt: skip
    return [p for p, ok in zip(candidates, opens, strict=True) if ok]


def _without_constants(
    values: pa.Array, parsed: pa.RecordBatch, positions: list[int], table: WireTable,
    result: Screened,
) -> tuple[pa.RecordBatch, list[int]]:  # fmt: skip
    """Arrow's reader takes ``NaN`` and ``Infinity`` for numbers, ``json`` refuses them: a
    message holding one in a number field is screened (refused, naming it) as it would be in
    any other batch, so it decodes the same whatever else is in its batch."""
    found = None
    for path, (_, arrow_type) in table.fields.items():
        if pa.types.is_floating(arrow_type):
            column = parsed.column(path[0])
            column = pc.struct_field(column, path[1]) if len(path) == 2 else column
            odd = pc.invert(pc.is_finite(column))
            found = odd if found is None else pc.or_kleene(found, odd)
    if found is None or not pc.any(pc.fill_null(found, False)).as_py():
        return parsed, positions
    odd = pc.fill_null(found, False).to_pylist()
    suspects = [p for p, flag in zip(positions, odd, strict=True) if flag]
    refused = set(suspects) - set(_screen_messages(values, suspects, table, result))
    keep = [p not in refused for p in positions]  # an overflowing 1e999 stays: the checks name it
    return parsed.filter(pa.array(keep)), [p for p in positions if p not in refused]


def _parse_block(
    values: pa.Array, positions: list[int], table: WireTable, compact: bool = False
) -> pa.RecordBatch | None:
    """Parse the messages at ``positions`` as one NDJSON block; None if Arrow refuses it."""
    if not positions:
        return table.empty()
    chosen = values.take(pa.array(positions, pa.int64()))
    try:  # Arrow's reader takes invalid UTF-8 in strings as it is: it stopped DuckDB later
        chosen.cast(pa.string())
    except pa.ArrowInvalid:
        return None
    if compact and pc.any(pc.match_substring_regex(chosen, r"[\r\n]")).as_py():
        # Screened messages may span lines: re-serialize them onto one line each.
        chosen = pa.array([_compact_line(v) for v in chosen.to_pylist()], pa.binary())
    try:
        parsed = pajson.read_json(
            pa.BufferReader(_numbered_lines(chosen)),
            read_options=READ_OPTIONS,
            parse_options=table.parse_options,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    numbers = parsed.column(_ROW)
    in_order = pa.array(np.arange(len(positions), dtype=np.int64))
    if parsed.num_rows != len(positions) or not numbers.equals(pa.chunked_array([in_order])):
        return None
    messages = parsed.column(_MESSAGE).combine_chunks()
    return pa.RecordBatch.from_struct_array(messages)


def _numbered_lines(chosen: pa.Array) -> pa.Buffer:
    """``{"_rda_row":i,"_rda_message":<message i>}`` a line, as one contiguous buffer."""
    numbers = pc.cast(pa.array(np.arange(len(chosen), dtype=np.int64)), pa.string())
    lines = pc.binary_join_element_wise(
        b'{"' + _ROW.encode() + b'":', numbers.cast(pa.binary()),
        b',"' + _MESSAGE.encode() + b'":', chosen, b"}\n", b"",
    )  # fmt: skip
    return _contiguous(lines)


def lines_buffer(chosen: pa.Array) -> pa.Buffer:
    """All values followed by a newline, as one contiguous buffer, without a Python loop."""
    return _contiguous(pc.binary_join_element_wise(chosen, pa.scalar(b"", pa.binary()), b"\n"))


def _contiguous(lines: pa.Array) -> pa.Buffer:
    """The bytes of a binary array's values, one after the other, as they are stored."""
    _, offsets_buffer, data = lines.buffers()
    offsets = pa.Array.from_buffers(
        pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset
    )
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return data.slice(start, end - start)


def _compact_line(value: bytes) -> bytes:
    if b"\n" not in value and b"\r" not in value:
        return value + b"\n"
    return json.dumps(json.loads(value), separators=(",", ":")).encode() + b"\n"


def _screen_messages(
    values: pa.Array, positions: list[int], table: WireTable, result: Screened
) -> list[int]:
    """Check each message's JSON and wire types; return the good positions."""
    good = []
    messages = values.to_pylist()
    for position in positions:
        try:
            check_message(messages[position], table)
        except Reject as reject:
            result.reject(position, reject.code, reject.reason)
        else:
            good.append(position)
    return good


def _refuse_constant(name: str) -> Any:
    raise Reject("not_finite", f"{name} is not a valid JSON number")


# json's messages, as a person reads them ("Unterminated string starting at" reads badly).
_JSON_ERRORS = {
    "Unterminated string starting at": "a string is never closed",
    "Expecting value": "a value is missing or is not JSON",
    "Expecting ',' delimiter": "a comma is missing between two items",
    "Expecting ':' delimiter": "a colon is missing after an object key",
    "Expecting property name enclosed in double quotes": "an object key is not a quoted string",
    "Extra data": "more follows the end of the JSON value",
    "Invalid control character at": "a string holds a raw control character",
    "Invalid \\escape": "a string holds an invalid backslash escape",
    "Invalid \\uXXXX escape": "a string holds an invalid \\u escape",
    "Illegal trailing comma before end of object": "a trailing comma ends an object",
    "Illegal trailing comma before end of array": "a trailing comma ends an array",
}


def parse_json(text: str) -> Any:
    """``json.loads`` with NaN/Infinity refused and every failure a ``Reject`` a person reads.

    Call it on bounded input only (``schemas/adapters/bounds.py``): depth and number length are
    checked before, so ``RecursionError`` and ``ValueError`` here are a last line of defence.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        what = _JSON_ERRORS.get(error.msg, error.msg[:1].lower() + error.msg[1:])
        where = f"line {error.lineno}, column {error.colno}"
        raise Reject("invalid_json", f"not valid JSON: {what} ({where})") from None
    except RecursionError:
        raise Reject("too_deep", "arrays and objects nest too deeply to parse") from None
    except ValueError as error:  # an integer literal past Python's digit limit
        raise Reject("number_too_long", f"a number is too long to read ({error})"[:200]) from None


def check_message(value: bytes, table: WireTable) -> dict:
    """The message as a dict if it is JSON of the right types; ``Reject`` otherwise."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Reject("invalid_utf8", f"invalid UTF-8 at byte {error.start}") from None
    document = parse_json(text)
    if not isinstance(document, dict):
        raise Reject("not_an_object", f"message is a JSON {type(document).__name__}")
    _check_types(document, table)
    return document


def _check_types(document: dict, table: WireTable) -> None:
    """Every present wire field has its JSON type (exact types: a bool is not a number)."""
    for group, fields in table.type_table:
        container = document if group is None else document.get(group)
        if container is None:
            continue  # a missing object means missing fields: the row checks name them
        if type(container) is not dict:
            raise Reject("wrong_type", f"{group} must be an object")
        for name, allowed in fields:
            value = container.get(name)
            where = name if group is None else f"{group}.{name}"
            if value is None or type(value) in allowed:
                # An integer field holds 64 bits (a number field takes any integer as a float).
                big = type(value) is int and not INT64_MIN <= value <= INT64_MAX
                if big and float not in allowed:
                    raise Reject("out_of_range", f"{where}={value} does not fit in 64 bits")
                continue
            expected = "/".join(sorted(t.__name__ for t in allowed))
            raise Reject("wrong_type", f"{where} must be {expected}, got {type(value).__name__}")


def _parse_one_by_one(
    values: pa.Array, positions: list[int], table: WireTable, result: Screened
) -> tuple[list[int], pa.RecordBatch]:
    good, batches = [], []
    for position in positions:
        parsed = _parse_block(values, [position], table, compact=True)
        if parsed is None:
            result.reject(position, "invalid_json", "the JSON reader refused this message")
        else:
            good.append(position)
            batches.append(parsed)
    combined = pa.Table.from_batches(batches, schema=table.arrow_schema).combine_chunks()
    return good, (combined.to_batches() or [table.empty()])[0]
