"""Leaf encoding of published rows (proofs.leaves): exact bytes, errors, and fast == reference."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proofs.jcs import canonicalize
from proofs.leaf_rules import LeafEncodingError
from proofs.leaves import leaf_bytes_for_batch, leaf_hashes_for_batch, row_to_jcs_value

T0 = 1_795_568_523  # 2026-11-25T01:02:03Z
D0 = 20_782  # 2026-11-25

EVERY_TYPE = [
    ("b", pa.bool_(), True),
    ("bin", pa.binary(), b"\xfb\xff"),
    ("d32", pa.date32(), D0),
    ("d64", pa.date64(), -62_135_596_800_000),  # 0001-01-01
    ("dec", pa.decimal128(10, 4), Decimal("-1.2300")),
    ("dec256", pa.decimal256(40, 2), Decimal("12345678901234567890123456789012345678.90")),
    ("decneg", pa.decimal128(5, -2), Decimal("1.23E+4")),
    ("dict", pa.dictionary(pa.int8(), pa.string()), "cat"),
    ("f16", pa.float16(), 1.5),
    ("f32", pa.float32(), 0.1),
    ("f64", pa.float64(), -0.0),
    ("f64big", pa.float64(), 1e21),
    ("fsb", pa.binary(3), b"abc"),
    ("fsl", pa.list_(pa.float64(), 2), [0.5, -2.0]),
    ("i8", pa.int8(), -128),
    ("llst", pa.large_list(pa.string()), ["a"]),
    ("ls", pa.large_string(), "x"),
    ("lst", pa.list_(pa.int64()), [1, None, 3]),
    ("n", pa.null(), None),
    (
        "nested",
        pa.list_(pa.struct([("v", pa.float64()), ("t", pa.timestamp("us"))])),
        [{"v": 2.5, "t": 0}],
    ),
    ("s", pa.string(), 'tab\t"q"\\ \u00e9\u20ac\U0001f602\x01'),
    ("st", pa.struct([("z", pa.int32()), ("a", pa.string()), ("\u00e9", pa.bool_())]), None),
    ("ts_ms", pa.timestamp("ms", tz="UTC"), T0 * 1000 + 4),
    ("ts_ns", pa.timestamp("ns"), T0 * 10**9 + 123_456_000),
    ("ts_s", pa.timestamp("s"), 0),
    ("ts_us", pa.timestamp("us", tz="Etc/UTC"), T0 * 10**6),
    ("u64", pa.uint64(), 2**53 - 1),
    ("\U0001f602", pa.int64(), 1),
    ("\uff5a", pa.int64(), 2),
]
STRUCT_VALUE = {"z": 1, "a": "x", "\u00e9": False}


def every_type_batch() -> pa.RecordBatch:
    """Row 0 holds the values above, row 1 is all nulls; columns in reverse order."""
    columns = reversed(EVERY_TYPE)
    return pa.RecordBatch.from_arrays(
        [pa.array([STRUCT_VALUE if name == "st" else v, None], typ) for name, typ, v in columns],
        names=[name for name, _, _ in reversed(EVERY_TYPE)],
    )


ROW_0 = (
    "{"
    '"b":true,'
    '"bin":"-_8",'
    '"d32":"2026-11-25",'
    '"d64":"0001-01-01",'
    '"dec":"-1.2300",'
    '"dec256":"12345678901234567890123456789012345678.90",'
    '"decneg":"12300",'
    '"dict":"cat",'
    '"f16":1.5,'
    '"f32":0.10000000149011612,'
    '"f64":0,'
    '"f64big":1e+21,'
    '"fsb":"YWJj",'
    '"fsl":[0.5,-2],'
    '"i8":-128,'
    '"llst":["a"],'
    '"ls":"x",'
    '"lst":[1,null,3],'
    '"n":null,'
    '"nested":[{"t":"1970-01-01T00:00:00.000000Z","v":2.5}],'
    '"s":"tab\\t\\"q\\"\\\\ \u00e9\u20ac\U0001f602\\u0001",'
    '"st":{"a":"x","z":1,"\u00e9":false},'
    '"ts_ms":"2026-11-25T01:02:03.004000Z",'
    '"ts_ns":"2026-11-25T01:02:03.123456Z",'
    '"ts_s":"1970-01-01T00:00:00.000000Z",'
    '"ts_us":"2026-11-25T01:02:03.000000Z",'
    '"u64":9007199254740991,'
    '"\U0001f602":1,'
    '"\uff5a":2'
    "}"
).encode("utf-8")
ROW_1 = ("{" + ",".join(f'"{name}":null' for name, _, _ in EVERY_TYPE) + "}").encode("utf-8")


def test_every_type_has_its_documented_encoding() -> None:
    assert leaf_bytes_for_batch(every_type_batch()) == [ROW_0, ROW_1]


def test_leaf_hashes_prefix_zero_byte() -> None:
    expected = [hashlib.sha256(b"\x00" + row).digest() for row in (ROW_0, ROW_1)]
    assert leaf_hashes_for_batch(every_type_batch()) == expected


def test_reference_row_encoding_gives_the_same_bytes() -> None:
    batch = every_type_batch()
    rows = batch.to_pylist()
    assert [canonicalize(row_to_jcs_value(r, batch.schema)) for r in rows] == [ROW_0, ROW_1]


def test_table_with_several_chunks_encodes_like_one_batch() -> None:
    batch = every_type_batch()
    table = pa.Table.from_batches([batch, batch.slice(1), batch.slice(0, 1)])
    assert leaf_bytes_for_batch(table) == [ROW_0, ROW_1, ROW_1, ROW_0]


def test_sliced_batch_encodes_only_its_rows() -> None:
    assert leaf_bytes_for_batch(every_type_batch().slice(1, 1)) == [ROW_1]


def test_slice_of_nested_columns_encodes_like_the_same_rows_unsliced() -> None:
    batch = pa.record_batch(
        {
            "l": pa.array([[1], [2, 3], None, [4]], pa.list_(pa.int64())),
            "f": pa.array([[1, 2], [3, 4], [5, 6], None], pa.list_(pa.int64(), 2)),
            "s": pa.array([{"a": i} for i in range(4)], pa.struct([("a", pa.int64())])),
        }
    )
    assert leaf_bytes_for_batch(batch.slice(1, 3)) == leaf_bytes_for_batch(batch)[1:]
    assert leaf_bytes_for_batch(batch)[1] == b'{"f":[3,4],"l":[2,3],"s":{"a":1}}'


def test_reference_path_rejects_a_row_that_does_not_match_the_schema() -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.int64())])
    with pytest.raises(ValueError, match=r"missing \{'b'\}, extra \{'c'\}"):
        row_to_jcs_value({"a": 1, "c": 2}, schema)


def test_empty_batch_has_no_leaves() -> None:
    assert leaf_bytes_for_batch(every_type_batch().slice(0, 0)) == []


def test_struct_null_row_is_null_not_object_of_nulls() -> None:
    batch = pa.record_batch({"s": pa.array([None, {"a": 1}], pa.struct([("a", pa.int8())]))})
    assert leaf_bytes_for_batch(batch) == [b'{"s":null}', b'{"s":{"a":1}}']


# -- errors name the column --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_float_names_column_and_row(bad: float) -> None:
    batch = pa.record_batch({"ok": [1.0, 2.0, 3.0], "rsrp": [1.0, None, bad]})
    with pytest.raises(LeafEncodingError, match=r"column 'rsrp', row 2: .* is not a JSON number"):
        leaf_bytes_for_batch(batch)


@pytest.mark.parametrize(
    ("typ", "value"),
    [(pa.int64(), 2**53), (pa.int64(), -(2**53)), (pa.uint64(), 2**64 - 1)],
)
def test_out_of_range_integer_names_column_and_row(typ: pa.DataType, value: int) -> None:
    batch = pa.record_batch({"cell_id": pa.array([7, value], typ)})
    with pytest.raises(
        LeafEncodingError, match=rf"column 'cell_id', row 1: integer {value} is outside the I-JSON"
    ):
        leaf_bytes_for_batch(batch)


def test_error_row_counts_across_slices_and_chunks() -> None:
    values = [0.0] * 70_000
    values[69_001] = float("nan")
    table = pa.Table.from_batches(
        [pa.record_batch({"x": values[:10]}), pa.record_batch({"x": values[10:]})]
    )
    with pytest.raises(LeafEncodingError, match="column 'x', row 69001"):
        leaf_bytes_for_batch(table)


def test_nan_inside_list_names_the_element_column() -> None:
    batch = pa.record_batch({"samples": pa.array([[1.0, float("nan")]])})
    with pytest.raises(LeafEncodingError, match=r"column 'samples\[\]': nan is not a JSON number"):
        leaf_bytes_for_batch(batch)


def test_out_of_range_integer_inside_struct_names_the_field() -> None:
    batch = pa.record_batch({"kpi": pa.array([{"dl": 2**60}], pa.struct([("dl", pa.int64())]))})
    with pytest.raises(LeafEncodingError, match=r"column 'kpi\.dl': integer"):
        leaf_bytes_for_batch(batch)


def test_non_utc_timestamp_is_rejected() -> None:
    batch = pa.record_batch({"t": pa.array([0], pa.timestamp("us", tz="Europe/Paris"))})
    with pytest.raises(LeafEncodingError, match="column 't': timestamp time zone 'Europe/Paris'"):
        leaf_bytes_for_batch(batch)


def test_sub_microsecond_timestamp_is_rejected() -> None:
    batch = pa.record_batch({"t": pa.array([1000, 1500], pa.timestamp("ns"))})
    with pytest.raises(LeafEncodingError, match="column 't', row 1: timestamp has nanoseconds"):
        leaf_bytes_for_batch(batch)


def test_timestamp_after_year_9999_is_rejected() -> None:
    batch = pa.record_batch({"t": pa.array([253_402_300_800], pa.timestamp("s"))})
    with pytest.raises(LeafEncodingError, match="column 't', row 0: timestamp outside years"):
        leaf_bytes_for_batch(batch)


def test_date_before_year_1_is_rejected() -> None:
    batch = pa.record_batch({"d": pa.array([-719_163], pa.int32()).cast(pa.date32())})
    with pytest.raises(LeafEncodingError, match="column 'd', row 0: date outside years"):
        leaf_bytes_for_batch(batch)


@pytest.mark.parametrize(
    "array",
    [
        pa.array([1], pa.time64("us")),
        pa.array([1], pa.duration("s")),
        pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
    ],
)
def test_unsupported_type_is_rejected(array: pa.Array) -> None:
    batch = pa.record_batch({"odd": array})
    message = re.escape(f"column 'odd': Arrow type {array.type} has no leaf encoding")
    with pytest.raises(LeafEncodingError, match=message):
        leaf_bytes_for_batch(batch)


def test_duplicate_column_names_are_rejected() -> None:
    batch = pa.RecordBatch.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        leaf_bytes_for_batch(batch)


def test_reference_path_rejects_nan_naming_column() -> None:
    schema = pa.schema([("rsrp", pa.float64())])
    with pytest.raises(LeafEncodingError, match="column 'rsrp': nan is not a JSON number"):
        row_to_jcs_value({"rsrp": float("nan")}, schema)


# -- the column-wise fast path equals the value-by-value reference -----------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
columns = st.fixed_dictionaries(
    {
        "f64": st.lists(st.none() | finite_floats, min_size=5, max_size=5),
        "f32": st.lists(
            st.none() | st.floats(width=32, allow_nan=False, allow_infinity=False),
            min_size=5,
            max_size=5,
        ),
        "i64": st.lists(st.none() | st.integers(-(2**53) + 1, 2**53 - 1), min_size=5, max_size=5),
        "s": st.lists(st.none() | st.text(), min_size=5, max_size=5),
        "bin": st.lists(st.none() | st.binary(), min_size=5, max_size=5),
        "ts": st.lists(
            st.none() | st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999),
            min_size=5,
            max_size=5,
        ),
        "lst": st.lists(
            st.none() | st.lists(st.none() | finite_floats, max_size=3), min_size=5, max_size=5
        ),
    }
)


@settings(max_examples=200)
@given(data=columns)
def test_fast_path_matches_reference(data: dict[str, list]) -> None:
    batch = pa.record_batch(
        {
            "f64": pa.array(data["f64"], pa.float64()),
            "f32": pa.array(data["f32"], pa.float32()),
            "i64": pa.array(data["i64"], pa.int64()),
            "s": pa.array(data["s"], pa.string()),
            "bin": pa.array(data["bin"], pa.binary()),
            "ts": pa.array(data["ts"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "lst": pa.array(data["lst"], pa.list_(pa.float64())),
        }
    )
    reference = [canonicalize(row_to_jcs_value(r, batch.schema)) for r in batch.to_pylist()]
    assert leaf_bytes_for_batch(batch) == reference


def test_only_the_floats_arrow_prints_otherwise_are_redone_and_the_rest_kept() -> None:
    # "-0", exponent forms and "-0.5" (which the C-speed search also finds) among ordinary
    # values and nulls, in a column long enough that each kind sits between many others.
    values = [0.25, -0.0, 1e21, -0.5, None, 1.5e-7, 333.3, 2.0**70, -17.125] * 400
    batch = pa.record_batch({"v": pa.array(values, pa.float64())})
    reference = [canonicalize(row_to_jcs_value(r, batch.schema)) for r in batch.to_pylist()]
    assert leaf_bytes_for_batch(batch) == reference
    assert reference[:4] == [b'{"v":0.25}', b'{"v":0}', b'{"v":1e+21}', b'{"v":-0.5}']


# Columns without a null leave their quotes to the literal parts between members.
complete_columns = st.integers(1, 6).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "s": st.lists(st.text(), min_size=n, max_size=n),
            "ts": st.lists(st.integers(0, 253_402_300_799_999_999), min_size=n, max_size=n),
            "d": st.lists(st.integers(-719_162, 2_932_896), min_size=n, max_size=n),
            "f": st.lists(finite_floats, min_size=n, max_size=n),
            "st": st.lists(st.tuples(st.text(), st.dates()), min_size=n, max_size=n),
        }
    )
)


@settings(max_examples=200)
@given(data=complete_columns)
def test_columns_without_nulls_match_reference(data: dict[str, list]) -> None:
    batch = pa.record_batch(
        {
            "s": pa.array(data["s"], pa.string()),
            "ts": pa.array(data["ts"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "d": pa.array(data["d"], pa.int32()).cast(pa.date32()),
            "f": pa.array(data["f"], pa.float64()),
            "st": pa.array(
                [{"name": t, "on": d} for t, d in data["st"]],
                pa.struct([("name", pa.string()), ("on", pa.date32())]),
            ),
        }
    )
    reference = [canonicalize(row_to_jcs_value(r, batch.schema)) for r in batch.to_pylist()]
    assert leaf_bytes_for_batch(batch) == reference


@pytest.mark.parametrize(
    "texts, rows",
    [
        (['needs "escaping"', "plain", "also plain"], slice(1, 3)),  # hidden bytes escape
        (["plain", 'a \\ and a "quote"', "tab\there"], slice(1, 3)),  # its own bytes escape
        (["plain", "", "\u0001"], slice(1, 2)),  # an empty text, its neighbour a control
    ],
)
def test_a_sliced_text_column_encodes_its_own_rows_as_the_reference(
    texts: list[str], rows: slice
) -> None:
    batch = pa.record_batch({"s": pa.array(texts, pa.string())}).slice(
        rows.start, rows.stop - rows.start
    )
    expected = [canonicalize({"s": t}) for t in texts[rows]]
    assert leaf_bytes_for_batch(batch) == expected


@given(values=st.lists(finite_floats, min_size=1, max_size=50))
def test_float_column_matches_jcs_of_python_floats(values: list[float]) -> None:
    batch = pa.record_batch({"x": pa.array(values, pa.float64())})
    assert leaf_bytes_for_batch(batch) == [canonicalize({"x": v}) for v in values]


@given(
    seconds=st.integers(-62_135_596_800, 253_402_300_799),
    fraction=st.integers(0, 999_999),
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
)
def test_timestamps_of_any_unit_match_python_datetime(
    seconds: int, fraction: int, unit: str
) -> None:
    per_second = {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}[unit]
    micros = {"s": 0, "ms": fraction // 1000 * 1000, "us": fraction, "ns": fraction}[unit]
    value = seconds * per_second + micros * per_second // 10**6
    assume(-(2**63) <= value < 2**63)
    batch = pa.record_batch({"t": pa.array([value], pa.timestamp(unit))})
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds, microseconds=micros)
    expected = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"
    assert leaf_bytes_for_batch(batch) == [f'{{"t":"{expected}"}}'.encode()]


def test_documented_example_row() -> None:  # docs/proof-format.md, section 2
    batch = pa.record_batch(
        {
            "node_id": pa.array(["node-00042"]),
            "ts": pa.array([T0 * 10**6], pa.timestamp("us", tz="UTC")),
            "rsrp_dbm": pa.array([-97.5]),
            "pci": pa.array([301], pa.int16()),
            "mcc": pa.array(["310"]),
            "sinr_db": pa.array([None], pa.float32()),
        }
    )
    assert leaf_bytes_for_batch(batch) == [
        b'{"mcc":"310","node_id":"node-00042","pci":301,"rsrp_dbm":-97.5,"sinr_db":null,'
        b'"ts":"2026-11-25T01:02:03.000000Z"}'
    ]
    assert leaf_hashes_for_batch(batch)[0].hex() == (
        "9e1da464a20fcfad5c1cfaa9b49dd4bee9f57806f6f593b3a67c708cbe39682c"
    )
