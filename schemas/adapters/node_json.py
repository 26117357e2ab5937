"""Adapter for the nodes' native JSON (``rda.node.v1``, see ``infra/fleet.py``).

Clean batches take a vectorized path: the messages are joined into newline-delimited JSON and
parsed by Arrow's C++ JSON reader against an explicit schema, several times faster than
``json.loads`` per message. A batch that fails there (any bad message fails the whole block) is
screened message by message to give each bad record its own reason, and the good ones go back
through the vectorized path.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from schemas.adapters.base import MAX_MESSAGE_BYTES, DecodeResult
from schemas.model import TelemetrySchema
from schemas.radio import RADIO_KPI_V1

_NUMBER = (int, float)
# Wire field path -> (JSON type the producer must send, Arrow type to parse it as).
_WIRE_FIELDS: dict[tuple[str, ...], tuple[tuple[type, ...], pa.DataType]] = {
    ("format",): ((str,), pa.string()),
    ("kind",): ((str,), pa.string()),
    ("node",): ((str,), pa.string()),
    ("ts_ms",): ((int,), pa.int64()),
    ("cell", "eci"): ((int,), pa.int64()),
    ("cell", "pci"): ((int,), pa.int64()),
    ("cell", "earfcn"): ((int,), pa.int64()),
    ("radio", "rsrp"): (_NUMBER, pa.float64()),
    ("radio", "rsrq"): (_NUMBER, pa.float64()),
    ("radio", "sinr"): (_NUMBER, pa.float64()),
    ("traffic", "dl_kbps"): (_NUMBER, pa.float64()),
    ("traffic", "ul_kbps"): (_NUMBER, pa.float64()),
    ("traffic", "ues"): ((int,), pa.int64()),
    ("latency_ms",): (_NUMBER, pa.float64()),
    ("loc", "lat"): (_NUMBER, pa.float64()),
    ("loc", "lon"): (_NUMBER, pa.float64()),
}
_GROUPS = ("cell", "radio", "traffic", "loc")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Event times outside [2000-01-01, 2100-01-01) cannot be a node's clock; refuse before casting.
_TS_MIN_MS, _TS_MAX_MS = 946_684_800_000, 4_102_444_800_000


def _wire_schema() -> pa.Schema:
    top: list[pa.Field] = []
    groups: dict[str, list[pa.Field]] = {name: [] for name in _GROUPS}
    for path, (_, arrow_type) in _WIRE_FIELDS.items():
        if len(path) == 1:
            top.append(pa.field(path[0], arrow_type))
        else:
            groups[path[0]].append(pa.field(path[1], arrow_type))
    return pa.schema(top + [pa.field(name, pa.struct(fields)) for name, fields in groups.items()])


_WIRE_SCHEMA = _wire_schema()
_PARSE_OPTIONS = pajson.ParseOptions(
    explicit_schema=_WIRE_SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=False
)


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class NodeJsonAdapter:
    """Decodes ``rda.node.v1`` messages into ``radio_kpi`` v1 rows."""

    wire_format = "rda.node.v1"
    schema: TelemetrySchema = RADIO_KPI_V1

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        values = raw.column("value")
        candidates, rejected, codes, reasons = _prescreen(values)
        parsed = _parse_block(values, candidates)
        if parsed is None:
            candidates, more = _screen_messages(values, candidates)
            for position, (code, reason) in more:
                rejected.append(position)
                codes.append(code)
                reasons.append(reason)
            parsed = _parse_block(values, candidates, compact=True)
            if parsed is None:  # a message our screen passed but Arrow refused: isolate it
                candidates, parsed, isolated = _parse_one_by_one(values, candidates)
                for position, reason in isolated:
                    rejected.append(position)
                    codes.append("invalid_json")
                    reasons.append(reason)
        wire = parsed
        bad_content = _content_rejects(wire)
        keep = pc.invert(pc.is_valid(bad_content))
        for position, reason in zip(
            pc.filter(pa.array(candidates, pa.int64()), pc.is_valid(bad_content)).to_pylist(),
            pc.drop_null(bad_content).to_pylist(),
            strict=True,
        ):
            code, _, message = reason.partition(":")
            rejected.append(position)
            codes.append(code)
            reasons.append(message.strip())
        row_index = pc.filter(pa.array(candidates, pa.int64()), keep)
        rows = _to_canonical(wire.filter(keep), raw.take(row_index))
        order = sorted(range(len(rejected)), key=rejected.__getitem__)
        return DecodeResult(
            rows=rows,
            row_index=row_index,
            rejected_index=pa.array([rejected[i] for i in order], pa.int64()),
            reject_codes=pa.array([codes[i] for i in order], pa.string()),
            reject_reasons=pa.array([reasons[i] for i in order], pa.string()),
        )


def _prescreen(values: pa.Array) -> tuple[list[int], list[int], list[str], list[str]]:
    """Reject tombstones, empty and oversized messages without looking inside them."""
    lengths = pc.binary_length(values)
    candidates, rejected, codes, reasons = [], [], [], []
    for position, length in enumerate(lengths.to_pylist()):
        if length is None:
            rejected.append(position)
            codes.append("tombstone")
            reasons.append("record has a null value (Kafka tombstone)")
        elif length == 0:
            rejected.append(position)
            codes.append("empty_message")
            reasons.append("record value is empty")
        elif length > MAX_MESSAGE_BYTES:
            rejected.append(position)
            codes.append("too_large")
            reasons.append(f"message is {length} bytes, over the {MAX_MESSAGE_BYTES} byte limit")
        else:
            candidates.append(position)
    return candidates, rejected, codes, reasons


def _parse_block(
    values: pa.Array, positions: list[int], compact: bool = False
) -> pa.RecordBatch | None:
    """Parse the messages at ``positions`` as one NDJSON block; None if Arrow refuses it."""
    if not positions:
        return pa.RecordBatch.from_pylist([], schema=_WIRE_SCHEMA)
    chosen = values.take(pa.array(positions, pa.int64()))
    if compact and pc.any(pc.match_substring_regex(chosen, r"[\r\n]")).as_py():
        # Screened messages may span lines: re-serialize them onto one line each.
        block = pa.py_buffer(b"".join(_compact_line(v) for v in chosen.to_pylist()))
    else:
        block = _ndjson_buffer(chosen)
    try:
        table = pajson.read_json(pa.BufferReader(block), parse_options=_PARSE_OPTIONS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(positions):
        return None
    return table.combine_chunks().to_batches()[0] if table.num_rows else _empty_wire()


def _ndjson_buffer(chosen: pa.Array) -> pa.Buffer:
    """All values followed by a newline, as one contiguous buffer, without a Python loop."""
    lines = pc.binary_join_element_wise(chosen, pa.scalar(b"", pa.binary()), b"\n")
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


def _empty_wire() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=_WIRE_SCHEMA)


def _screen_messages(
    values: pa.Array, positions: list[int]
) -> tuple[list[int], list[tuple[int, tuple[str, str]]]]:
    """Check each message's JSON and wire types; return the good positions and the rejects."""
    good, rejects = [], []
    messages = values.to_pylist()
    for position in positions:
        try:
            _check_message(messages[position])
        except _Reject as reject:
            rejects.append((position, (reject.code, reject.reason)))
        else:
            good.append(position)
    return good, rejects


def _refuse_constant(name: str) -> Any:
    raise _Reject("not_finite", f"{name} is not a valid JSON number")


def _check_message(value: bytes) -> None:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Reject("invalid_utf8", f"invalid UTF-8 at byte {error.start}") from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise _Reject("invalid_json", f"{error.msg} at {where}") from None
    if not isinstance(document, dict):
        raise _Reject("not_an_object", f"message is a JSON {type(document).__name__}")
    _check_types(document)


def _type_table() -> tuple[tuple[str | None, tuple[tuple[str, frozenset[type]], ...]], ...]:
    """``_WIRE_FIELDS`` regrouped as (object name or None for top level, fields) for a flat loop."""
    groups: dict[str | None, list[tuple[str, frozenset[type]]]] = {None: []}
    for path, (json_types, _) in _WIRE_FIELDS.items():
        group = path[0] if len(path) == 2 else None
        groups.setdefault(group, []).append((path[-1], frozenset(json_types)))
    return tuple((group, tuple(fields)) for group, fields in groups.items())


_TYPE_TABLE = _type_table()


def _check_types(document: dict) -> None:
    """Every present wire field has its JSON type (exact types: a bool is not a number)."""
    for group, fields in _TYPE_TABLE:
        container = document if group is None else document.get(group)
        if container is None:
            continue  # a missing object means missing fields: the row checks name them
        if type(container) is not dict:
            raise _Reject("wrong_type", f"{group} must be an object")
        for name, allowed in fields:
            value = container.get(name)
            if value is None or type(value) in allowed:
                if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
                    where = name if group is None else f"{group}.{name}"
                    raise _Reject("out_of_range", f"{where}={value} does not fit in 64 bits")
                continue
            where = name if group is None else f"{group}.{name}"
            expected = "/".join(sorted(t.__name__ for t in allowed))
            raise _Reject("wrong_type", f"{where} must be {expected}, got {type(value).__name__}")


def _parse_one_by_one(
    values: pa.Array, positions: list[int]
) -> tuple[list[int], pa.RecordBatch, list[tuple[int, str]]]:
    good, batches, isolated = [], [], []
    for position in positions:
        parsed = _parse_block(values, [position], compact=True)
        if parsed is None:
            isolated.append((position, "the JSON reader refused this message"))
        else:
            good.append(position)
            batches.append(parsed)
    combined = pa.Table.from_batches(batches, schema=_WIRE_SCHEMA).combine_chunks()
    return good, (combined.to_batches() or [_empty_wire()])[0], isolated


def _content_rejects(wire: pa.RecordBatch) -> pa.Array:
    """Per row, null if the content is usable, else "code: message" (vectorized)."""
    fmt, kind, ts = wire.column("format"), wire.column("kind"), wire.column("ts_ms")
    wrong_format = pc.fill_null(pc.not_equal(fmt, NodeJsonAdapter.wire_format), True)
    wrong_kind = pc.fill_null(pc.not_equal(kind, "radio_kpi"), True)
    bad_time = pc.fill_null(
        pc.or_(pc.less(ts, _TS_MIN_MS), pc.greater_equal(ts, _TS_MAX_MS)), False
    )
    fmt_text = pc.fill_null(fmt, "<missing>")
    kind_text = pc.fill_null(kind, "<missing>")
    ts_text = pc.cast(ts, pa.string())
    return pc.case_when(
        pc.make_struct(wrong_format, wrong_kind, bad_time),
        pc.binary_join_element_wise("unknown_format: format is ", fmt_text, ""),
        pc.binary_join_element_wise("unknown_kind: kind is ", kind_text, ""),
        pc.binary_join_element_wise(
            "bad_timestamp: ts_ms=", ts_text, " is outside 2000-01-01..2100-01-01", ""
        ),
    )


def _to_canonical(wire: pa.RecordBatch, raw: pa.RecordBatch) -> pa.RecordBatch:
    """Map wire fields to canonical names, types and units (kbit/s -> Mbit/s, ms -> us)."""

    def sub(group: str, name: str) -> pa.Array:
        return pc.struct_field(wire.column(group), name)

    micros = pa.timestamp("us", tz="UTC")
    columns = {
        "node_id": wire.column("node"),
        "event_time": pc.cast(pc.multiply(wire.column("ts_ms"), 1000), pa.int64()).cast(micros),
        "cell_id": sub("cell", "eci"),
        "pci": sub("cell", "pci"),
        "earfcn": sub("cell", "earfcn"),
        "rsrp_dbm": sub("radio", "rsrp"),
        "rsrq_db": sub("radio", "rsrq"),
        "sinr_db": sub("radio", "sinr"),
        "dl_throughput_mbps": pc.divide(sub("traffic", "dl_kbps"), 1000.0),
        "ul_throughput_mbps": pc.divide(sub("traffic", "ul_kbps"), 1000.0),
        "latency_ms": wire.column("latency_ms"),
        "connected_ues": sub("traffic", "ues"),
        "latitude": sub("loc", "lat"),
        "longitude": sub("loc", "lon"),
        "source_topic": raw.column("topic"),
        "source_partition": raw.column("partition"),
        "source_offset": raw.column("offset"),
        "ingest_time": pc.multiply(raw.column("timestamp_ms"), 1000).cast(micros),
    }
    # Integers stay 64-bit here: a value too wide for its canonical type must reach the range
    # checks (and be quarantined with its value), not wrap or vanish in a narrowing cast.
    return pa.RecordBatch.from_pydict(columns)
