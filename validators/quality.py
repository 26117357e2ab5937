"""Quality checks Great Expectations lacks, vectorized with ``pyarrow.compute``.

The *stateless* checks judge a row on its own and run per chunk, in the Beam pipeline; the
*sequence* checks (``validators/sequence.py``) and lateness (``validators/event_time.py``) judge a
row against what came before it in its partition, with state carried across chunks and batches,
and run in the driver (``streaming/event_time.py``).

| check | level | code |
|---|---|---|
| a Kafka timestamp before 2000 or after it is read | quarantine | ``bad_timestamp`` |
| event time ahead of ingest time by more than ``max_ahead_s`` | quarantine | ``clock_skew`` |
| a malformed IMSI, MSISDN, IMEI, MAC or IP address | quarantine | ``malformed`` |
| an IMSI's, IMEI's or ICCID's shape in public free text | quarantine | ``identifier_in_text`` |
| great SINR at noise-floor RSRP; a session ending before it starts | quarantine | ``implausible`` |
| a location no node could reach from its last accepted one (sequence) | quarantine | ``teleport`` |
| its event-time window closed before it arrived (watermark) | flag | ``late`` |
| a counter (uptime) lower than the node's previous report (sequence) | flag | ``counter_reset`` |
| the same sensor values ``flat_line_reports`` times in a row (sequence) | flag | ``flat_line`` |

Duplicates are caught earlier (``pipelines/standardize.py``, ``sinks/dedup.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.fields import DEVICE_PROOF_FIELDS
from schemas.model import Privacy, TelemetrySchema
from validators import event_time
from validators.rowchecks import first_failures
from validators.sequence import (
    SequenceSettings,
    SequenceState,
    check_sequences,
    input_columns,
    sequence_inputs,
)

DEFAULT_WINDOWS = event_time.WindowSettings()
STATELESS_CODES = ("clock_skew", "malformed", "implausible", "identifier_in_text")
HARD_CODES = (*STATELESS_CODES, "teleport")
FLAGS = ("late", "counter_reset", "flat_line")
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

# A subscriber's IMSI (14-15 digits), IMEI (15) or SIM's ICCID (19-20, from 89) inside a public
# text field (a firmware string, a server name, an unsigned node's id): the text is published as
# sent, so a node could publish one there (red team). Only a run of exactly 14 or 15 digits
# (millisecond timestamps have 13, microsecond ones 16), but for a 14-digit date and time
# (a firmware's build stamp, 20251124153012), and not within a hex string of 16 characters or
# more (an id, a digest: M-Lab's test ids end in a hex counter, "000000000000590E" of the
# sample). Compatibility forms first (NFKC: fullwidth, superscript, circled digits), then
# invisible characters out (format characters, combining marks, the Hangul fillers), so that
# they cannot break a run up. Phone numbers (7-15 digits) cannot be told from other numbers in
# free text, and are not looked for; nor are digits spaced out, spelled, or made part of a
# hex string: this keeps out a mistake and the obvious leak, not a node set on hiding one.
_IDENTIFIER_IN_TEXT = r"(^|[^\p{Nd}])\p{Nd}{14,15}([^\p{Nd}]|$)"
_ICCID_IN_TEXT = r"(^|[^\p{Nd}])89\p{Nd}{17,18}([^\p{Nd}]|$)"
_INVISIBLE = r"[\p{Cf}\p{Mn}\p{Me}\x{115F}\x{1160}\x{3164}\x{FFA0}]+"
_SEPARATOR = r"([^\p{L}\p{Nd}])"  # doubled first, so that neighbours each have their own
_NOT_A_DIGIT = r"([^\p{Nd}])"
_HEX_STRING = r"(^|[^\p{L}\p{Nd}])[0-9A-Fa-f]{16,}([^\p{L}\p{Nd}]|$)"
_DATE_TIME = (
    r"(^|[^\p{Nd}])(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
    r"([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]([^\p{Nd}]|$)"
)
# Hex the pipeline checked itself (a device signature's key id, commitment, path, signature):
# 64 random hex digits hold such a run about once in a hundred.
_MACHINE_TEXT = frozenset(f.name for f in DEVICE_PROOF_FIELDS)


@dataclass(frozen=True)
class QualitySettings:
    max_ahead_s: float = 300.0  # a clock this far ahead of the broker's is wrong
    max_speed_kmh: float = 1000.0  # faster than an airliner: no node moves like that
    min_jump_km: float = 1.0  # GPS jitter below this is not a jump
    flat_line_reports: int = 5
    noise_floor_rsrp_dbm: float = -120.0
    max_sinr_at_noise_floor_db: float = 20.0

    @property
    def sequence(self) -> SequenceSettings:
        return SequenceSettings(self.max_speed_kmh, self.min_jump_km, self.flat_line_reports)


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


def check_stateless(
    schema: TelemetrySchema, rows: pa.RecordBatch, settings: QualitySettings = QualitySettings()
) -> QualityResult:
    """The checks that judge each row on its own (per chunk): codes and reasons, no flags."""
    n = rows.num_rows
    codes, reasons = first_failures(n, _hard_checks(schema, rows, settings))
    return QualityResult(codes, reasons, pa.nulls(n, pa.string()))


def check_quality(
    schema: TelemetrySchema,
    rows: pa.RecordBatch,
    settings: QualitySettings = QualitySettings(),
    windows: event_time.WindowSettings = DEFAULT_WINDOWS,
) -> QualityResult:
    """Every check over ``rows`` alone, as one stretch of stream (no earlier state).

    Rows are judged in stream order (``source_partition``, ``source_offset``); the streaming
    driver runs the same checks with state carried from batch to batch instead.
    """
    outcome = check_stateless(schema, rows, settings)
    order = pc.sort_indices(
        pa.table({"p": rows.column("source_partition"), "o": rows.column("source_offset")}),
        [("p", "ascending"), ("o", "ascending")],
    )
    ordered = rows.take(order)
    passed = np.asarray(pc.is_null(outcome.codes.take(order)), bool)
    times = event_time.micros(ordered.column(event_time_field(schema)))
    marks = event_time.watermarks(
        np.asarray(ordered.column("source_partition"), np.int64),
        np.asarray(ordered.column("source_offset"), np.int64),
        times,
        passed,
        {},
    )
    late = event_time.late(times, marks.before, None, windows)
    # The sequence checks see the rows that passed every other check, as in the stream.
    kept = pa.array(np.flatnonzero(passed), pa.int64())
    names = [n for n in input_columns(schema.name) if n in ordered.schema.names]
    columns = {name: ordered.column(name).take(kept) for name in names}
    inputs = sequence_inputs(schema.name, columns, pa.array(times[passed], pa.int64()))
    result, _ = check_sequences(inputs, SequenceState.empty(schema.name), settings.sequence)
    unsort = pc.sort_indices(order)
    flags = sequence_flags(
        pa.array(late, pa.bool_()).take(unsort),
        scatter(result.counter_reset, passed, False).take(unsort),
        scatter(result.flat_line, passed, False).take(unsort),
    )
    jump = scatter(result.teleport_km, passed, None).take(unsort)
    teleport = pc.and_(pc.is_valid(jump), pc.is_null(outcome.codes))
    count = pc.sum(teleport).as_py() or 0
    codes, reasons = outcome.codes, outcome.reasons
    if count:
        codes = pc.replace_with_mask(codes, teleport, _constant("teleport", count))
        reasons = pc.replace_with_mask(
            reasons, teleport, teleport_reasons(pc.filter(jump, teleport))
        )
    return QualityResult(codes, reasons, flags.flags, flags.flag_counts)


@dataclass(frozen=True)
class Flags:
    flags: pa.StringArray
    flag_counts: dict[str, int]


def sequence_flags(late: pa.Array, counter_reset: pa.Array, flat_line: pa.Array) -> Flags:
    """The ``quality_flags`` column from each flag's mask, in the documented order."""
    masks = [pc.fill_null(m, False) for m in (late, counter_reset, flat_line)]
    counts = {flag: pc.sum(m).as_py() or 0 for flag, m in zip(FLAGS, masks, strict=True)}
    if not any(counts.values()):  # most chunks raise none: no texts to join
        return Flags(pa.nulls(len(late), pa.string()), counts)
    arrays = [
        pc.if_else(m, pa.scalar(flag), pa.scalar(None, pa.string()))
        for flag, m in zip(FLAGS, masks, strict=True)
    ]
    return Flags(_joined_flags(arrays, len(late)), counts)


def scatter(values: pa.Array, where: np.ndarray, default: object) -> pa.Array:
    """``values`` at the positions where ``where`` holds, ``default`` elsewhere."""
    if len(values) == len(where):  # every row took part (none was quarantined before)
        return values
    full = pa.array([default] * len(where), values.type)
    return pc.replace_with_mask(full, pa.array(where, pa.bool_()), values) if len(values) else full


def teleport_reasons(jump_km: pa.Array) -> pa.Array:
    text = pc.cast(jump_km, pa.string())
    return pc.binary_join_element_wise(
        "location jumps ", text, " km from the node's last accepted report", ""
    )


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


# The Kafka timestamps a record may carry (published as ``ingest_time``): 2000-01-01 to 2099.
_INGEST_FROM_US, _INGEST_UNTIL_US = 946_684_800_000_000, 4_102_444_800_000_000


def _lag_s(schema: TelemetrySchema, rows: pa.RecordBatch, ingest: pa.Array) -> pa.Array:
    """Ingest time (``ingest``, µs) minus event time, in seconds (negative: the event is in the
    future)."""
    event = rows.column(event_time_field(schema)).cast(pa.int64())
    # A difference past 2^53 µs (~285 years) is not exact as a double: a safe cast raised for a
    # record the producer dated 2400 and stopped `rda run` for good (red team).
    return pc.divide(pc.subtract(ingest, event).cast(pa.float64(), safe=False), 1e6)


Describe = Callable[[pa.Array], pa.Array]  # failing-row mask -> their reasons


def _hard_checks(
    schema: TelemetrySchema, rows: pa.RecordBatch, settings: QualitySettings
) -> Iterator[tuple[str, pa.Array, Describe]]:
    names = set(rows.schema.names)
    # A row without an event time has no window (a session with no end: its schema may leave
    # the end out); it reached the event-time step as int64's minimum and stopped the stream.
    event = event_time_field(schema)
    timeless = pc.is_null(rows.column(event))
    missing = f"{event} is missing: it is the record's event time"
    yield "missing_required", timeless, lambda m: _constant(missing, pc.sum(m).as_py())
    ingest = rows.column("ingest_time").cast(pa.int64())  # the producer's CreateTime
    # Nor can a record have been produced after it is read (but for clocks apart by up to
    # `max_ahead_s`): a node dating a record 2099 and its event too passed the clock-skew
    # check, and took its partition's watermark to 2099, closing every window before it.
    # (The clock moves on: a redo may pass what a first try refused, never the reverse.)
    read_us = int((time.time() + settings.max_ahead_s) * 1e6)
    until = min(_INGEST_UNTIL_US, read_us)
    outside = pc.or_(pc.less(ingest, _INGEST_FROM_US), pc.greater_equal(ingest, until))
    beyond = " µs after 1970: before 2000, or after it was read"
    yield "bad_timestamp", outside, _describe("the record's Kafka timestamp is ", ingest, beyond)
    lag = _lag_s(schema, rows, ingest)
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
    for name in sorted(free_text_fields(schema) & names):
        shaped = _identifier_shaped(rows.column(name))
        if shaped is None:
            continue
        text = (
            f"{name} holds a number of an IMSI's, IMEI's or ICCID's shape: public text may not "
            "carry a subscriber's identifier (the value is not repeated)"
        )
        yield "identifier_in_text", shaped, lambda m, t=text: _constant(t, pc.sum(m).as_py())


def _identifier_shaped(text: pa.Array) -> pa.Array | None:
    """Which values hold an IMSI's or IMEI's shape; None if none does. Judged once per distinct
    value: a chunk's node ids, firmware and servers repeat (~2 ms a 200,000-row column, against
    ~25 ms value by value), and only those ``_suspects`` keeps go through the rules' regular
    expressions (~7 ms a call, most of it compiling their Unicode classes)."""
    values = _suspects(pc.unique(text))
    if not len(values):
        return None
    normal = pc.utf8_normalize(values, form="NFKC")
    visible = pc.replace_substring_regex(normal, _INVISIBLE, "")
    spaced = pc.replace_substring_regex(visible, _SEPARATOR, r"\1\1")
    iccid = pc.match_substring_regex(spaced, _ICCID_IN_TEXT)
    kept = pc.replace_substring_regex(spaced, _HEX_STRING, r"\1\2")
    kept = pc.replace_substring_regex(kept, _NOT_A_DIGIT, r"\1\1")  # dates side by side
    kept = pc.replace_substring_regex(kept, _DATE_TIME, r"\1\6")
    shaped = pc.or_(pc.match_substring_regex(kept, _IDENTIFIER_IN_TEXT), iccid)
    shaped = pc.fill_null(shaped, False)
    if not pc.any(shaped).as_py():
        return None
    return pc.fill_null(pc.is_in(text, value_set=pc.filter(values, shaped)), False)


def _suspects(values: pa.Array) -> pa.Array:
    """The values the rules must read: all but ASCII ones without 14 ASCII digits in a row,
    which cannot hold a match — NFKC leaves ASCII as it is, ASCII has no invisible characters,
    and the rules only take out or double what lies between digit runs, never join two."""
    ascii_text = pc.fill_null(pc.string_is_ascii(values), True)
    long_run = pc.fill_null(pc.match_substring_regex(values, "[0-9]{14}"), False)
    return pc.filter(values, pc.or_(pc.invert(ascii_text), long_run))


def free_text_fields(schema: TelemetrySchema) -> set[str]:
    """The schema's public text fields a node writes as it likes: no list of allowed values,
    not hex the pipeline checked."""
    return {
        f.name
        for f in schema.fields
        if f.privacy is Privacy.PUBLIC
        and pa.types.is_string(f.type)
        and f.allowed is None
        and f.name not in _MACHINE_TEXT
    }


def _describe(prefix: str, values: pa.Array, suffix: str) -> Describe:
    def describe(mask: pa.Array) -> pa.Array:
        text = pc.fill_null(pc.cast(pc.filter(values, mask), pa.string()), "null")
        return pc.binary_join_element_wise(prefix, text, suffix, "")

    return describe


def _constant(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, pa.string()), n)
