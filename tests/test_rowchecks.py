"""Row checks from schema metadata: each failing row gets the reason of its first failed check."""

from __future__ import annotations

import math

import pyarrow as pa

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
