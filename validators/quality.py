"""Quality checks Great Expectations lacks, vectorized with ``pyarrow.compute``.

They run on rows that passed the schema's row checks, per chunk (a chunk is one partition's
offset range, and records are keyed by node, so a node's reports arrive together, in order).

| check | level | code |
|---|---|---|
| event time ahead of ingest time by more than ``max_ahead_s`` | quarantine | ``clock_skew`` |
| a malformed IMSI, MSISDN, IMEI, MAC or IP address | quarantine | ``malformed`` |
| great SINR at noise-floor RSRP; a session ending before it starts | quarantine | ``implausible`` |
| a location no node could reach from its neighbours in time (a spike) | quarantine | ``teleport`` |
| event time behind ingest time by more than ``max_late_s`` | flag | ``late`` |
| a counter (uptime) lower than the node's previous report | flag | ``counter_reset`` |
| a sensor repeating exactly the same values ``flat_line_reports`` times | flag | ``flat_line`` |

Duplicates are caught earlier (``pipelines/standardize.py``, ``sinks/dedup.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from schemas.model import TelemetrySchema

HARD_CODES = ("clock_skew", "malformed", "implausible", "teleport")
FLAGS = ("late", "counter_reset", "flat_line")
_EARTH_RADIUS_KM = 6371.0088
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Identifier and address formats (session fields): checked before anything is pseudonymized.
_FORMATS = {
    "imsi": (r"^[0-9]{14,15}$", "an IMSI (14-15 digits)"),
    "msisdn": (r"^[0-9]{7,15}$", "an E.164 number (7-15 digits)"),
    "imei": (r"^[0-9]{15}$", "an IMEI (15 digits)"),
    "mac": (r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", "a MAC address (6 colon-separated bytes)"),
    "ue_ip": (
        rf"^({_OCTET}(\.{_OCTET}){{3}}|[0-9a-fA-F]{{0,4}}(:[0-9a-fA-F]{{0,4}}){{2,7}})$",
        "an IPv4 or IPv6 address",
    ),
}
_FLAT_LINE_COLUMNS = {"radio_kpi": ("rsrp_dbm", "sinr_db"), "node_heartbeat": ("temperature_c",)}


@dataclass(frozen=True)
class QualitySettings:
    max_ahead_s: float = 300.0  # a clock this far ahead of the broker's is wrong
    max_late_s: float = 3600.0  # reports older than this on arrival are flagged late
    max_speed_kmh: float = 1000.0  # faster than an airliner: no node moves like that
    min_jump_km: float = 1.0  # GPS jitter below this is not a jump
    flat_line_reports: int = 5
    noise_floor_rsrp_dbm: float = -120.0
    max_sinr_at_noise_floor_db: float = 20.0


@dataclass(frozen=True)
class QualityResult:
    """Per row: ``codes``/``reasons`` null unless a hard check failed; ``flags`` null if none."""

    codes: pa.StringArray
    reasons: pa.StringArray
    flags: pa.StringArray
    flag_counts: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> pa.BooleanArray:
        return pc.is_null(self.codes)


def check_quality(
    schema: TelemetrySchema, rows: pa.RecordBatch, settings: QualitySettings = QualitySettings()
) -> QualityResult:
    n = rows.num_rows
    codes, reasons = pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
    for code, failed, describe in _hard_checks(schema, rows, settings):
        first = pc.and_(pc.fill_null(failed, False), pc.is_null(codes))
        count = pc.sum(first).as_py() or 0
        if count:  # reasons are formatted for the failing rows only
            codes = pc.replace_with_mask(codes, first, _constant(code, count))
            reasons = pc.replace_with_mask(reasons, first, describe(first))
    flag_arrays, counts = [], {}
    for flag, raised in _soft_checks(schema, rows, settings):
        raised = pc.fill_null(raised, False)
        counts[flag] = pc.sum(raised).as_py() or 0
        flag_arrays.append(pc.if_else(raised, pa.scalar(flag), pa.scalar(None, pa.string())))
    return QualityResult(codes, reasons, _joined_flags(flag_arrays, n), counts)


def _joined_flags(arrays: list[pa.Array], n: int) -> pa.Array:
    if not arrays:
        return pa.nulls(n, pa.string())
    # (null_handling="skip" drops rows where every input is null: join empties, then tidy.)
    joined = pc.binary_join_element_wise(
        *[pc.fill_null(a, "") for a in arrays], ",", null_handling="replace"
    )
    joined = pc.utf8_trim(pc.replace_substring_regex(joined, ",+", ","), ",")
    return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined)


def event_time_field(schema: TelemetrySchema) -> str:
    names = {f.name for f in schema.all_fields}
    return "event_time" if "event_time" in names else "session_end"


def _lag_s(schema: TelemetrySchema, rows: pa.RecordBatch) -> pa.Array:
    """Ingest time minus event time, in seconds (negative: the event is in the future)."""
    event = rows.column(event_time_field(schema)).cast(pa.int64())
    ingest = rows.column("ingest_time").cast(pa.int64())
    return pc.divide(pc.subtract(ingest, event).cast(pa.float64()), 1e6)


Describe = Callable[[pa.Array], pa.Array]  # failing-row mask -> their reasons


def _hard_checks(
    schema: TelemetrySchema, rows: pa.RecordBatch, settings: QualitySettings
) -> Iterator[tuple[str, pa.Array, Describe]]:
    names = set(rows.schema.names)
    lag = _lag_s(schema, rows)
    limit = f" s ahead of ingest (limit {settings.max_ahead_s:g} s)"
    ahead = pc.less(lag, -settings.max_ahead_s)
    yield "clock_skew", ahead, _describe("event time is ", pc.negate(lag), limit)
    if {"rsrp_dbm", "sinr_db"} <= names:
        rsrp, sinr = rows.column("rsrp_dbm"), rows.column("sinr_db")
        implausible = pc.and_(
            pc.less(rsrp, settings.noise_floor_rsrp_dbm),
            pc.greater(sinr, settings.max_sinr_at_noise_floor_db),
        )
        at_floor = f" is impossible with rsrp_dbm below {settings.noise_floor_rsrp_dbm:g}"
        yield "implausible", implausible, _describe("sinr_db=", sinr, at_floor)
    if {"session_start", "session_end"} <= names:
        start, end = rows.column("session_start"), rows.column("session_end")
        backwards = pc.less(end, start)
        yield "implausible", backwards, _describe("session_end ", end, " is before its start")
    for name, (pattern, what) in _FORMATS.items():
        if name in names:
            malformed = pc.invert(pc.match_substring_regex(rows.column(name), pattern))
            # The value is not repeated in the reason: it may be personal data.
            text = f"{name} is not {what}"
            yield "malformed", malformed, lambda m, t=text: _constant(t, pc.sum(m).as_py())
    if {"latitude", "longitude", "node_id"} <= names:
        jump_km = _teleports(schema, rows, settings)
        neighbours = " km from the node's neighbouring reports"
        yield "teleport", pc.is_valid(jump_km), _describe("location jumps ", jump_km, neighbours)


def _soft_checks(
    schema: TelemetrySchema, rows: pa.RecordBatch, settings: QualitySettings
) -> Iterator[tuple[str, pa.Array]]:
    names = set(rows.schema.names)
    yield "late", pc.greater(_lag_s(schema, rows), settings.max_late_s)
    if {"uptime_s", "node_id"} <= names:
        order, same_prev, _ = _sorted(rows, ["node_id"], event_time_field(schema))
        uptime = rows.column("uptime_s").take(order)
        dropped = pc.and_(same_prev, pc.less(uptime, _shift_prev(uptime)))
        yield "counter_reset", _unsort(dropped, order)
    columns = _FLAT_LINE_COLUMNS.get(schema.name)
    if columns and set(columns) <= names:
        yield "flat_line", _flat_lines(schema, rows, columns, settings.flat_line_reports)


def _teleports(
    schema: TelemetrySchema, rows: pa.RecordBatch, settings: QualitySettings
) -> pa.Array:
    """Per row, the jump in km if the row is a spike no node could make, else null.

    A spike is a location unreachable both from the node's previous report and to its next one
    (so a node that really moved is not punished twice; the first and last report of a node in a
    chunk have one neighbour only and are never called teleports).
    """
    time = event_time_field(schema)
    order, same_prev, same_next = _sorted(rows, ["node_id"], time)
    lat = rows.column("latitude").take(order)
    lon = rows.column("longitude").take(order)
    micros = rows.column(time).take(order).cast(pa.int64())
    hours = pc.divide(micros.cast(pa.float64()), 3.6e9)
    from_prev = _distance_km(_shift_prev(lat), _shift_prev(lon), lat, lon)
    to_next = _distance_km(lat, lon, _shift_next(lat), _shift_next(lon))
    bad_prev = _infeasible(from_prev, pc.subtract(hours, _shift_prev(hours)), settings)
    bad_next = _infeasible(to_next, pc.subtract(_shift_next(hours), hours), settings)
    spike = pc.and_(pc.and_(same_prev, same_next), pc.and_(bad_prev, bad_next))
    spike = pc.fill_null(spike, False)
    jump = pc.round(from_prev, 1)
    return _unsort(pc.if_else(spike, jump, pa.scalar(None, pa.float64())), order)


def _infeasible(km: pa.Array, hours: pa.Array, settings: QualitySettings) -> pa.Array:
    hours = pc.max_element_wise(pc.abs(hours), 1 / 3600)  # reports in the same second
    too_fast = pc.greater(pc.divide(km, hours), settings.max_speed_kmh)
    return pc.and_(pc.greater(km, settings.min_jump_km), too_fast)


def _distance_km(lat1: pa.Array, lon1: pa.Array, lat2: pa.Array, lon2: pa.Array) -> pa.Array:
    """Great-circle distance (haversine), vectorized."""
    rad = math.pi / 180
    phi1, phi2 = pc.multiply(lat1, rad), pc.multiply(lat2, rad)
    dphi = pc.subtract(phi2, phi1)
    dlmb = pc.multiply(pc.subtract(lon2, lon1), rad)
    a = pc.add(
        pc.power(pc.sin(pc.divide(dphi, 2)), 2),
        pc.multiply(
            pc.multiply(pc.cos(phi1), pc.cos(phi2)), pc.power(pc.sin(pc.divide(dlmb, 2)), 2)
        ),
    )
    a = pc.min_element_wise(pc.max_element_wise(a, 0.0), 1.0)
    return pc.multiply(pc.asin(pc.sqrt(a)), 2 * _EARTH_RADIUS_KM)


def _flat_lines(
    schema: TelemetrySchema, rows: pa.RecordBatch, columns: tuple[str, ...], run: int
) -> pa.Array:
    """Rows in a run of at least ``run`` reports with exactly the same sensor values."""
    keys = ["node_id", "cell_id"] if "cell_id" in rows.schema.names else ["node_id"]
    order, same_prev, _ = _sorted(rows, keys, event_time_field(schema))
    repeats = same_prev
    for name in columns:
        values = rows.column(name).take(order)
        repeats = pc.and_(repeats, pc.fill_null(pc.equal(values, _shift_prev(values)), False))
    run_id = pc.cumulative_sum(pc.invert(repeats).cast(pa.int64()))
    lengths = pc.value_counts(run_id).field("counts")  # run ids ascend: counts in run order
    length = pc.take(lengths, pc.subtract(run_id, 1))
    return _unsort(pc.greater_equal(length, run), order)


def _sorted(
    rows: pa.RecordBatch, keys: list[str], time: str
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Sort order by keys then time, and whether each sorted row shares its keys with the
    previous / next sorted row."""
    # Sort on integers: string keys become their dictionary codes (grouping needs no collation).
    columns = {}
    for name in [*keys, time]:
        column = rows.column(name)
        if pa.types.is_string(column.type):
            column = pc.dictionary_encode(column).indices
        elif pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        columns[name] = column
    order = pc.sort_indices(pa.table(columns), [(k, "ascending") for k in columns])
    same_prev = pa.nulls(len(order), pa.bool_()).fill_null(True)
    for key in keys:
        values = rows.column(key).take(order)
        same_prev = pc.and_(same_prev, pc.fill_null(pc.equal(values, _shift_prev(values)), False))
    same_next = _shift_next(same_prev).fill_null(False) if len(order) else same_prev
    same_prev = pc.fill_null(same_prev, False)
    return order, same_prev, same_next


def _shift_prev(values: pa.Array) -> pa.Array:
    """values[i - 1] at i (null at 0)."""
    if not len(values):
        return values
    return pa.concat_arrays([pa.nulls(1, values.type), values.slice(0, len(values) - 1)])


def _shift_next(values: pa.Array) -> pa.Array:
    """values[i + 1] at i (null at the end)."""
    if not len(values):
        return values
    return pa.concat_arrays([values.slice(1), pa.nulls(1, values.type)])


def _unsort(values: pa.Array, order: pa.Array) -> pa.Array:
    return pc.take(values, pc.sort_indices(order))


def _describe(prefix: str, values: pa.Array, suffix: str) -> Describe:
    def describe(mask: pa.Array) -> pa.Array:
        text = pc.fill_null(pc.cast(pc.filter(values, mask), pa.string()), "null")
        return pc.binary_join_element_wise(prefix, text, suffix, "")

    return describe


def _constant(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, pa.string()), n)
