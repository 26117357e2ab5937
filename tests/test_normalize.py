"""Normalization helpers: canonical units, UTC microseconds from every time form, typed text."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.adapters.normalize import (
    bytes_per_s_to_mbit,
    canonical_name,
    epoch_to_micros,
    implausible_times,
    kbit_to_mbit,
    text_to_micros,
    text_to_numbers,
)

UTC = dt.timezone.utc
WHEN = dt.datetime(2025, 11, 25, 1, 2, 3, 123456, tzinfo=UTC)


def test_throughput_units_become_mbit_per_s():
    assert kbit_to_mbit(pa.array([45000.0, None])).to_pylist() == [45.0, None]
    assert bytes_per_s_to_mbit(pa.array([12_500_000])).to_pylist() == [100.0]


@pytest.mark.parametrize(
    ("values", "unit"),
    [
        (pa.array([1_764_032_523.123456]), "s"),
        (pa.array([1_764_032_523_123.456]), "ms"),
        (pa.array([1_764_032_523_123_456]), "us"),
        (pa.array([1_764_032_523_123_456_789]), "ns"),
    ],
)
def test_epoch_times_in_any_unit_become_utc_microseconds(values, unit):
    assert epoch_to_micros(values, unit).to_pylist() == [WHEN]


def test_implausible_epoch_times_become_null_and_are_named():
    values = pa.array([0, 10**15, None, 1_764_032_523], pa.int64())
    micros = epoch_to_micros(values, "s")
    assert micros.to_pylist()[:3] == [None, None, None]
    assert implausible_times(values, micros).to_pylist() == [True, True, False, False]


@given(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)))
def test_epoch_milliseconds_agree_with_the_standard_library(when):
    when = when.replace(microsecond=when.microsecond // 1000 * 1000, tzinfo=UTC)
    millis = (when - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(milliseconds=1)
    assert epoch_to_micros(pa.array([millis]), "ms").to_pylist() == [when]


def test_rfc3339_naive_and_offset_times_become_utc_microseconds():
    texts = [
        "2025-11-25T01:02:03.123456Z",
        "2025-11-25T03:02:03.123456789+02:00",
        "2025-11-25 01:02:03.123456",
        "2025-11-24T20:02:03.123456-0500",
        "  ",
        None,
    ]
    micros, bad = text_to_micros(pa.array(texts))
    assert micros.to_pylist() == [WHEN] * 4 + [None, None]
    assert bad.to_pylist() == [False] * 6


def test_text_that_is_not_a_time_or_out_of_clock_range_is_flagged():
    micros, bad = text_to_micros(pa.array(["soon", "2025-13-45 00:00:00", "1970-01-01T00:00:00Z"]))
    assert micros.to_pylist() == [None, None, None]
    assert bad.to_pylist() == [True, True, False]  # the last parses; the range check names it


def test_numbers_as_text_are_typed_with_wrong_and_non_finite_values_flagged():
    values, wrong, not_finite = text_to_numbers(pa.array([" 1.5 ", "-2e3", "", "x", "NaN", "-inf"]))
    assert values.to_pylist() == [1.5, -2000.0, None, None, None, None]
    assert wrong.to_pylist() == [False, False, False, True, False, False]
    assert not_finite.to_pylist() == [False, False, False, False, True, True]


def test_integers_as_text_refuse_decimals_and_values_beyond_64_bits():
    values, wrong, _ = text_to_numbers(pa.array(["12", "1.5", str(2**70)]), integer=True)
    assert values.to_pylist() == [12, None, None]
    assert wrong.to_pylist() == [False, True, True]


def test_canonical_names_drop_units_case_and_spacing():
    assert canonical_name("  DL  Throughput (kbps) ") == "dl throughput"
    assert canonical_name("ne_name") == "ne name"
    assert canonical_name("RSRP [dBm]") == "rsrp"


def test_units_in_brackets_are_dropped_from_a_name():
    assert canonical_name(" DL Throughput (kbps) ") == "dl throughput"
    assert canonical_name("RRC_Conn [avg]") == "rrc conn"


def test_a_name_of_many_unclosed_brackets_is_folded_in_linear_time():
    """The lazy pattern this replaces scanned to the end of the name from every "(": a header
    title of 24,000 took 4 s, one of a megabyte about two hours (red team)."""
    import time

    started = time.process_time()
    assert canonical_name("(" * 200_000 + "x") == "(" * 200_000 + "x"
    assert time.process_time() - started < 1.0
