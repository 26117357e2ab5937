"""Adapter for legacy element managers' CSV exports (``ems.csv``) into radio_kpi rows.

A message is one export: a header line, then one or more data lines (one row each). Encoding is
UTF-8 with or without a byte-order mark; lines end in CRLF or LF; fields may be quoted (RFC 4180,
quotes doubled inside); blank lines are skipped; an empty cell is null. Header names are matched
case- and whitespace-insensitively with the unit in brackets read apart, so
``DL Throughput (kbps)``, ``dl_throughput [Mbit/s]`` and ``DL THROUGHPUT`` all name one column.

| header (any of) | field | unit conversion |
|---|---|---|
| NE Name, Node, Node ID, Site | node_id | — |
| Start Time, Time, Timestamp, Event Time | event_time | RFC 3339; naive times are UTC |
| ECI, Cell ID, Cell | cell_id | — |
| PCI; EARFCN, DL EARFCN; Band | pci; earfcn; band | — |
| RSRP; RSRQ; SINR | rsrp_dbm; rsrq_db; sinr_db | — (dBm, dB) |
| DL Throughput, UL Throughput | dl/ul_throughput_mbps | bps, kbps, Mbps, Gbps → Mbit/s |
| PRB Usage, PRB Utilization, DL PRB Usage | prb_utilization_pct | % |
| Active UEs, Connected UEs, UEs | connected_ues | — |
| Latency | latency_ms | ms, s, us |
| Latitude, Longitude | latitude, longitude | degrees |

Times are RFC 3339 with an offset, or naive ``YYYY-MM-DD HH:MM:SS`` taken as UTC. Throughput
without a unit in its header is taken as kbit/s. Other columns are ignored. A data line that does
not parse (wrong field count, a number or time that is not one, bad quoting) quarantines the whole
export; the reason names the line number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from schemas.adapters.base import DecodedRows, DecodeResult, canonical_rows, lineage_columns
from schemas.adapters.csv_blocks import SimpleExports, line_numbers, parse_block, split_exports
from schemas.adapters.messages import Reject, Rejections, decode_text, unreadable
from schemas.adapters.normalize import canonical_name, text_to_micros, text_to_numbers
from schemas.model import TelemetrySchema
from schemas.radio import RADIO_KPI_V1

WIRE_FORMAT = "ems.csv"
_HEADERS = {
    "node_id": ("ne name", "ne", "node", "node id", "site", "site name"),
    "event_time": ("start time", "time", "timestamp", "event time", "begin time"),
    "cell_id": ("eci", "cell id", "cell"),
    "pci": ("pci",),
    "earfcn": ("earfcn", "dl earfcn"),
    "band": ("band",),
    "rsrp_dbm": ("rsrp",),
    "rsrq_db": ("rsrq",),
    "sinr_db": ("sinr",),
    "dl_throughput_mbps": ("dl throughput",),
    "ul_throughput_mbps": ("ul throughput",),
    "prb_utilization_pct": ("prb usage", "prb utilization", "dl prb usage"),
    "connected_ues": ("active ues", "connected ues", "ues"),
    "latency_ms": ("latency",),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon"),
}
_SLOT_OF = {name: slot for slot, names in _HEADERS.items() for name in names}
_SLOTS = tuple(_HEADERS)
_TEXT = frozenset({"node_id", "band", "event_time"})
_INTEGER = frozenset({"cell_id", "pci", "earfcn", "connected_ues"})
# unit -> (multiply by, divide by): exact for the usual integral scalings (x / 1000, not x * 0.001)
_THROUGHPUT_TO_MBPS = {
    None: (1, 1000),
    "bps": (1, 1_000_000),
    "bit/s": (1, 1_000_000),
    "kbps": (1, 1000),
    "kbit/s": (1, 1000),
    "kb/s": (1, 1000),
    "mbps": (1, 1),
    "mbit/s": (1, 1),
    "mb/s": (1, 1),
    "gbps": (1000, 1),
    "gbit/s": (1000, 1),
}
_LATENCY_TO_MS = {None: (1, 1), "ms": (1, 1), "s": (1000, 1), "us": (1, 1000), "µs": (1, 1000)}
_UNITS = {
    "dl_throughput_mbps": _THROUGHPUT_TO_MBPS,
    "ul_throughput_mbps": _THROUGHPUT_TO_MBPS,
    "latency_ms": _LATENCY_TO_MS,
}


@dataclass(frozen=True, eq=False)  # one per distinct header, hashed by identity
class _Layout:
    """Where each canonical field sits in an export's lines, and its unit factor."""

    width: int
    picks: tuple[int | None, ...]  # per slot: column number, or None when absent
    factors: dict[str, tuple[int, int]]


class EmsCsvAdapter:
    """Decodes element-manager CSV exports into radio_kpi rows, one per data line."""

    wire_format = WIRE_FORMAT
    nested = False  # CSV has no nesting to bound (schemas/adapters/bounds.py)
    schemas: tuple[TelemetrySchema, ...] = (RADIO_KPI_V1,)

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        rejected = Rejections()
        values = raw.column("value")
        exports, others = split_exports(values)
        pieces, refused = _bulk_pieces(exports)
        slow = _SlowPath(rejected)
        for position in sorted(others.to_pylist() + refused):
            slow.read(position, values[position].as_py())
        pieces += slow.pieces()
        if not pieces:
            return rejected.result()
        texts, factors, lines, positions = _columns(pieces)
        columns, bad = _typed(texts, factors, lines, positions, rejected)
        columns |= lineage_columns(raw, positions)
        batch = canonical_rows(RADIO_KPI_V1, columns, len(positions))
        if bad:  # a record is published whole or not at all
            keep = pc.invert(pc.is_in(positions, value_set=pa.array(sorted(bad), pa.int64())))
            batch, positions = batch.filter(keep), pc.filter(positions, keep)
        return rejected.result((DecodedRows(RADIO_KPI_V1, batch, positions),))


def _bulk_pieces(groups: list[SimpleExports]) -> tuple[list[_Piece], list[int]]:
    """One Arrow parse per header; the positions Arrow's path could not take."""
    pieces, refused = [], []
    for group in groups:
        layout = _header_layout(group.header)
        if not isinstance(layout, _Layout):
            refused += group.positions.to_pylist()  # the per-message reader names the problem
            continue
        usable = pc.and_(
            pc.greater(group.counts, 0),
            pc.equal(group.commas, pc.multiply(group.counts, layout.width - 1)),
        )
        refused += pc.filter(group.positions, pc.invert(usable)).to_pylist()
        positions, counts = pc.filter(group.positions, usable), pc.filter(group.counts, usable)
        columns = None
        if len(positions):
            columns = parse_block(pc.filter(group.bodies, usable), counts, layout.width)
        if columns is None:
            refused += positions.to_pylist()
            continue
        index, lines = line_numbers(positions, counts)
        pieces.append(_Piece(layout, columns, lines, index))
    return pieces, refused


def _header_layout(header: str) -> _Layout | Reject | None:
    try:
        return _layout_or_reject(next(csv.reader([header])))
    except (csv.Error, StopIteration):
        return None


@dataclass
class _SlowPath:
    """Exports read one by one with Python's csv module, gathered per layout."""

    rejected: Rejections
    layouts: dict[tuple[str, ...], _Layout | Reject] = field(default_factory=dict)
    groups: dict[_Layout, tuple[list, list, list]] = field(default_factory=dict)

    def read(self, position: int, value: bytes | None) -> None:
        try:
            refusal = unreadable(value)
            if refusal is not None:
                raise refusal
            layout, rows, lines = _read_export(value, self.layouts)
        except Reject as reject:
            self.rejected.add(position, reject.code, reject.reason)
            return
        found_rows, found_lines, index = self.groups.setdefault(layout, ([], [], []))
        found_rows += rows
        found_lines += lines
        index += [position] * len(rows)

    def pieces(self) -> list[_Piece]:
        return [
            _Piece(
                layout,
                list(zip(*rows, strict=True)),
                pa.array(lines, pa.int64()),
                pa.array(index, pa.int64()),
            )
            for layout, (rows, lines, index) in self.groups.items()
        ]


@dataclass
class _Piece:
    """Data lines sharing one layout: the text of each header column, line numbers, positions."""

    layout: _Layout
    columns: Sequence[Sequence[str] | pa.Array]
    lines: pa.Array
    index: pa.Array


def _columns(pieces: list[_Piece]) -> tuple[dict, dict, pa.Array, pa.Array]:
    """Per slot, the cells' text of all pieces in one array; unit factors, lines, positions."""
    texts: dict[str, list[pa.Array]] = {slot: [] for slot in _SLOTS}
    factors: dict[str, tuple[list[pa.Array], list[pa.Array]]] = {s: ([], []) for s in _UNITS}
    for piece in pieces:
        rows = len(piece.index)
        for slot, pick in zip(_SLOTS, piece.layout.picks, strict=True):
            column = piece.columns[pick] if pick is not None else pa.nulls(rows, pa.string())
            texts[slot].append(pa.array(column, pa.string()))
        for slot, (times, over) in factors.items():
            multiply, divide = piece.layout.factors[slot]
            times.append(pa.repeat(pa.scalar(float(multiply)), rows))
            over.append(pa.repeat(pa.scalar(float(divide)), rows))
    return (
        {slot: pa.concat_arrays(arrays) for slot, arrays in texts.items()},
        {slot: tuple(pa.concat_arrays(a) for a in pair) for slot, pair in factors.items()},
        pa.concat_arrays([piece.lines for piece in pieces]),
        pa.concat_arrays([piece.index for piece in pieces]),
    )


def looks_like(value: bytes) -> bool:
    """Cheap content sniff: a first line of comma-separated names with a time and a cell."""
    end = value.find(b"\n")
    first = (value if end < 0 else value[:end]).lower()  # the header line, however long
    return b"," in first and b"{" not in first and b"time" in first and b"rsrp" in first


def _read_export(
    value: bytes, layouts: dict[tuple[str, ...], _Layout | Reject]
) -> tuple[_Layout, list[list[str]], list[int]]:
    """One export read with Python's csv module: (layout, rows, line numbers), or ``Reject``
    naming the first bad line."""
    reader = csv.reader(io.StringIO(decode_text(value), newline=""), strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(header):
            header = next(reader, None)
        if header is None:
            raise Reject("no_measurement", "the export has no header line")
        layout = layouts.get(tuple(header))
        if layout is None:
            layout = layouts[tuple(header)] = _layout_or_reject(header)
        if isinstance(layout, Reject):
            raise layout
        rows, lines = [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != layout.width:
                line = reader.line_num
                raise Reject(
                    "invalid_csv",
                    f"line {line} has {len(row)} fields, the header has {layout.width}",
                )
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as error:
        raise Reject("invalid_csv", f"line {reader.line_num}: {error}") from None
    if not rows:
        raise Reject("no_measurement", "the export has a header but no data lines")
    return layout, rows, lines


def _layout_or_reject(header: list[str]) -> _Layout | Reject:
    picks: dict[str, int] = {}
    factors = {slot: units[None] for slot, units in _UNITS.items()}
    for column, title in enumerate(header):
        slot = _SLOT_OF.get(canonical_name(title))
        if slot is None:
            continue  # a column radio_kpi has no slot for
        if slot in picks:
            return Reject("invalid_csv", f"header names {slot} twice ({title!r})")
        picks[slot] = column
        if slot in _UNITS:
            unit = _unit(title)
            if unit not in _UNITS[slot]:
                known = ", ".join(u for u in _UNITS[slot] if u)
                return Reject("unknown_unit", f"{title!r}: unit {unit} is not one of {known}")
            factors[slot] = _UNITS[slot][unit]
    return _Layout(len(header), tuple(picks.get(slot) for slot in _SLOTS), factors)


def _unit(title: str) -> str | None:
    start, end = title.find("("), title.find(")")
    if start < 0 or end < start:
        start, end = title.find("["), title.find("]")
    if start < 0 or end < start:
        return None
    return title[start + 1 : end].strip().lower() or None


def _typed(
    texts: dict[str, pa.Array],
    factors: dict[str, tuple[pa.Array, pa.Array]],
    lines: pa.Array,
    positions: pa.Array,
    rejected: Rejections,
) -> tuple[dict[str, pa.Array], set[int]]:
    """Canonical columns from the cells' text, vectorized; rejects records with bad cells."""
    empty_is_null = {
        slot: pc.if_else(pc.equal(texts[slot], ""), None, texts[slot])
        for slot in ("node_id", "band")
    }
    columns: dict[str, pa.Array] = dict(empty_is_null)
    bad: set[int] = set()

    def refuse(mask: pa.Array, code: str, slot: str, what: str) -> None:
        if not pc.any(mask).as_py():
            return
        failing = pc.filter(pa.array(range(len(mask)), pa.int64()), mask).to_pylist()
        for row in failing:
            position = positions[row].as_py()
            if position not in bad:
                bad.add(position)
                cell = texts[slot][row].as_py()
                line = lines[row].as_py()
                rejected.add(position, code, f"line {line}: {slot}={cell!r} {what}")

    micros, not_time = text_to_micros(texts["event_time"])
    refuse(not_time, "bad_timestamp", "event_time", "is not a time")
    out_of_clock = pc.and_(pc.is_valid(texts["event_time"]), pc.is_null(micros))
    refuse(pc.and_(out_of_clock, pc.invert(not_time)), "bad_timestamp", "event_time",
           "is outside 2000-01-01..2100-01-01")  # fmt: skip
    columns["event_time"] = micros
    for slot in _SLOTS:
        if slot in _TEXT:
            continue
        values, wrong, not_finite = text_to_numbers(texts[slot], integer=slot in _INTEGER)
        refuse(not_finite, "not_finite", slot, "is not a finite number")
        refuse(wrong, "wrong_type", slot, "is not an integer" if slot in _INTEGER else
               "is not a number")  # fmt: skip
        if slot in factors:
            times, over = factors[slot]
            values = pc.divide(pc.multiply(values, times), over)
        columns[slot] = values
    return columns, bad
