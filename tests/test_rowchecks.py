"""Row checks from schema metadata: each failing row gets the reason of its first failed check."""

from __future__ import annotations

import math

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from schemas.model import Field, TelemetrySchema
from validators.rowchecks import check_rows

SCHEMA = TelemetrySchema(
    name="probe",
    major=1,
    minor=0,
    description="test schema",
    natural_key=("id",),
    fields=(
        Field("id", pa.string(), "identifier", required=True),
        Field(
            "rsrp_dbm", pa.float64(), "power", unit="dBm", required=True, minimum=-140, maximum=-43
        ),
        Field("ues", pa.int64(), "users", minimum=0),
    ),
    lineage=(),
)


def check(rows: list[dict]):
    return check_rows(SCHEMA, pa.RecordBatch.from_pylist(rows))


def test_rows_within_ranges_pass():
    result = check([{"id": "a", "rsrp_dbm": -90.0, "ues": 3}])
    assert result.valid.to_pylist() == [True]
    assert result.codes.to_pylist() == [None]


def test_out_of_range_reason_names_field_value_bounds_and_unit():
    result = check([{"id": "a", "rsrp_dbm": -20.0, "ues": 3}])
    assert result.codes.to_pylist() == ["out_of_range"]
    assert result.reasons.to_pylist() == ["rsrp_dbm=-20 is outside [-140, -43] dBm"]


def test_open_ended_range_is_reported_with_infinity():
    assert check([{"id": "a", "rsrp_dbm": -90.0, "ues": -1}]).reasons.to_pylist() == [
        "ues=-1 is outside [0, +inf]"
    ]


def test_missing_required_value_is_reported():
    result = check([{"id": None, "rsrp_dbm": -90.0, "ues": 1}])
    assert result.reasons.to_pylist() == ["id is required but missing"]


def test_missing_optional_value_is_fine():
    assert check([{"id": "a", "rsrp_dbm": -90.0, "ues": None}]).valid.to_pylist() == [True]


def test_nan_is_not_finite_rather_than_in_range():
    result = check([{"id": "a", "rsrp_dbm": math.nan, "ues": 1}])
    assert result.codes.to_pylist() == ["not_finite"]


def test_first_failing_check_in_field_order_wins():
    result = check([{"id": None, "rsrp_dbm": 0.0, "ues": -5}])
    assert result.codes.to_pylist() == ["missing_required"]


def test_each_row_is_judged_on_its_own():
    result = check(
        [
            {"id": "a", "rsrp_dbm": -90.0, "ues": 1},
            {"id": "b", "rsrp_dbm": -200.0, "ues": 1},
            {"id": "c", "rsrp_dbm": -60.0, "ues": 1},
        ]
    )
    assert result.valid.to_pylist() == [True, False, True]
    assert result.rejected == 1


def _first_failure(row: dict) -> str | None:
    """The code of the first check ``row`` fails, in field order, judged in plain Python."""
    for field in SCHEMA.all_fields:
        value = row[field.name]
        if value is None:
            if field.required:
                return "missing_required"
            continue
        if isinstance(value, float) and not math.isfinite(value):
            return "not_finite"
        if isinstance(value, int) and abs(value) > 2**53 - 1:  # beyond what a leaf holds
            return "out_of_range"
        low, high = field.minimum, field.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            return "out_of_range"
    return None


_POWER = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-140.0, -43.0, -140.5, -42.5]),  # on and just past the bounds
)
_ROW = st.fixed_dictionaries(
    {
        "id": st.one_of(st.none(), st.text(max_size=3)),
        "rsrp_dbm": _POWER,
        "ues": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    }
)


@given(st.lists(_ROW, max_size=30))
def test_every_row_gets_the_code_of_its_first_failed_check(rows):
    batch = pa.RecordBatch.from_pylist(
        rows,
        schema=pa.schema([("id", pa.string()), ("rsrp_dbm", pa.float64()), ("ues", pa.int64())]),
    )
    result = check_rows(SCHEMA, batch)
    expected = [_first_failure(row) for row in rows]
    assert result.codes.to_pylist() == expected
    assert result.valid.to_pylist() == [code is None for code in expected]
    assert [r is None for r in result.reasons.to_pylist()] == [c is None for c in expected]


# -- what a published row's leaf cannot hold (stop 68's fuzzing: each stopped its batch) -------

LEAF_SCHEMA = TelemetrySchema(
    name="leafy",
    major=1,
    minor=0,
    description="numbers a leaf may not hold",
    natural_key=("id",),
    fields=(
        Field("id", pa.string(), "identifier", required=True),
        Field("uptime_s", pa.int64(), "no maximum", minimum=0),
        Field("hops_ms", pa.list_(pa.float64()), "a list of times"),
        Field("counts", pa.list_(pa.int64()), "a list of counts"),
        Field("source", pa.string(), "an optional enumeration", allowed=("gps", "cell")),
    ),
    lineage=(),
)


def leaf_check(**row):
    rows = pa.RecordBatch.from_pylist([{"id": "a", **row}], schema=LEAF_SCHEMA.arrow_schema())
    result = check_rows(LEAF_SCHEMA, rows)
    return result.codes.to_pylist()[0], result.reasons.to_pylist()[0]


def test_an_integer_beyond_what_json_carries_exactly_is_out_of_range_even_without_a_maximum():
    assert leaf_check(uptime_s=2**53 - 1) == (None, None)
    assert leaf_check(uptime_s=2**53) == (
        "out_of_range",
        f"uptime_s={2**53} is beyond ±9,007,199,254,740,991, what JSON carries exactly",
    )


def test_a_list_holding_an_infinite_number_fails_its_row():
    assert leaf_check(hops_ms=[12.5, 3.0]) == (None, None)
    assert leaf_check(hops_ms=[math.inf, 12.5]) == (
        "not_finite",
        "hops_ms holds a number that is not a finite number",
    )
    assert leaf_check(hops_ms=[math.nan])[0] == "not_finite"


def test_a_list_holding_an_integer_beyond_2_to_the_53_fails_its_row():
    assert leaf_check(counts=[1, -(2**53)])[0] == "out_of_range"


def test_a_missing_optional_enumeration_is_allowed_and_an_unlisted_value_is_not():
    assert leaf_check(source=None) == (None, None)
    assert leaf_check(source="wifi") == ("not_allowed", "source=wifi is not one of: gps, cell")


@given(st.lists(st.one_of(st.floats(), st.none()), max_size=5))
def test_a_list_of_floats_passes_exactly_when_every_element_is_finite_or_null(hops):
    code, _ = leaf_check(hops_ms=hops)
    finite = all(h is None or math.isfinite(h) for h in hops)
    assert (code is None) == finite
