"""Normalization shared by the adapters: canonical units, UTC microseconds, names, types.

Everything here works on whole Arrow columns with ``pyarrow.compute``. Text columns (CSV cells,
numbers sent as strings) are typed in bulk; a value that does not parse yields a per-row reason
instead of an exception, so the adapter can quarantine exactly the records that hold it.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

UTC_MICROS = pa.timestamp("us", tz="UTC")
KBIT_TO_MBIT = 1 / 1000
BYTES_TO_MBIT = 8 / 1_000_000
# A node's or probe's clock outside [2000-01-01, 2100-01-01) is broken, not a measurement.
EARLIEST_US, LATEST_US = 946_684_800_000_000, 4_102_444_800_000_000
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_INTEGER = r"^[+-]?\d+$"
_NOT_FINITE = r"^[+-]?(?i:nan|inf|infinity)$"
_ZONED = r"(Z|z|[+-]\d\d:?\d\d)$"
_TIME_TEXT = r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?(Z|z|[+-]\d\d:?\d\d)?$"


def kbit_to_mbit(values: pa.Array) -> pa.Array:
    return pc.divide(values, 1000.0)


def bytes_per_s_to_mbit(values: pa.Array) -> pa.Array:
    return pc.multiply(values, BYTES_TO_MBIT)


def canonical_name(name: str) -> str:
    """A vendor's column or counter name as a lookup key: units in brackets dropped, case and
    whitespace folded. ``" DL Throughput (kbps) "`` -> ``"dl throughput"``."""
    # A bracket's content never spans another bracket: the lazy ``.*?`` it replaces scanned to
    # the end of the name from every one of many unclosed "(": a 1 MB header took two hours.
    name = re.sub(r"[(\[][^()\[\]]*[)\]]", " ", name)
    return " ".join(name.replace("_", " ").lower().split())


def epoch_to_micros(values: pa.Array, unit: str) -> pa.Array:
    """Epoch times in ``unit`` (s, ms, us or ns; integers or floats) as UTC microseconds.

    Values outside the plausible clock range become null (``implausible_times`` names them):
    they would not fit the cast, and no real measurement carries them.
    """
    per_second = _PER_SECOND[unit]
    factor = 1_000_000 / per_second
    if pa.types.is_floating(values.type):
        micros = pc.round(pc.multiply(values, factor))
    elif per_second > 1_000_000:
        micros = pc.divide(values, int(per_second // 1_000_000))
    else:
        micros = pc.multiply(values.cast(pa.int64()), int(factor))
    plausible = pc.and_(
        pc.greater_equal(micros, EARLIEST_US), pc.less(micros, LATEST_US)
    )  # also false for NaN
    kept = pc.if_else(plausible, micros, pa.scalar(None, micros.type))
    return kept.cast(pa.int64()).cast(UTC_MICROS)


def implausible_times(original: pa.Array, micros: pa.Array) -> pa.Array:
    """True where a present time was refused by ``epoch_to_micros`` or ``text_to_micros``."""
    return pc.and_(pc.is_valid(original), pc.is_null(micros))


def text_to_micros(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """RFC 3339 / ISO 8601 text as UTC microseconds, and a mask of values that are not times.

    Accepted: ``YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM]``. A time without an offset is taken
    as UTC. Fractions beyond microseconds are truncated. Empty text is null, not an error.
    """
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    shaped = pc.fill_null(pc.match_substring_regex(text, _TIME_TEXT), True)
    usable = pc.if_else(shaped, text, pa.scalar(None, pa.string()))
    usable = pc.replace_substring_regex(usable, r"(\.\d{6})\d+", r"\1")
    usable = pc.replace_substring_regex(usable, r"([+-]\d\d)(\d\d)$", r"\1:\2")
    zoned = pc.fill_null(pc.match_substring_regex(usable, _ZONED), True)
    usable = pc.if_else(zoned, usable, pc.binary_join_element_wise(usable, "Z", ""))
    micros = _cast_each_on_failure(usable, UTC_MICROS)
    unparsed = pc.and_(pc.is_valid(usable), pc.is_null(micros))
    bad = pc.or_(pc.invert(shaped), unparsed)
    plausible = pc.and_(
        pc.greater_equal(micros.cast(pa.int64()), EARLIEST_US),
        pc.less(micros.cast(pa.int64()), LATEST_US),
    )
    micros = pc.if_else(pc.fill_null(plausible, True), micros, pa.scalar(None, UTC_MICROS))
    return micros, bad


def text_to_numbers(values: pa.Array, integer: bool = False) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Numbers written as text, typed: (values, not-a-number mask, not-finite mask).

    Surrounding whitespace is ignored and empty text is null. ``NaN``/``Infinity`` spellings are
    flagged apart so they quarantine as ``not_finite`` rather than ``wrong_type``.
    """
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    pattern = _INTEGER if integer else _DECIMAL
    numeric = pc.fill_null(pc.match_substring_regex(text, pattern), True)
    not_finite = pc.fill_null(pc.match_substring_regex(text, _NOT_FINITE), False)
    usable = pc.if_else(numeric, text, pa.scalar(None, pa.string()))
    target = pa.int64() if integer else pa.float64()
    typed = _cast_each_on_failure(usable, target)  # integers beyond 64 bits come back null
    wrong = pc.or_(
        pc.and_(pc.invert(numeric), pc.invert(not_finite)),
        pc.and_(pc.is_valid(usable), pc.is_null(typed)),
    )
    return typed, wrong, not_finite


def _cast_each_on_failure(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast the column at once; if one value fails, cast value by value (nulls for failures)."""
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        out = []
        for value in values:
            try:
                out.append(value.cast(target).as_py() if value.is_valid else None)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                out.append(None)
        return pa.array(out, target)
