"""The element-manager CSV adapter: header names and units, quoting, line endings, line numbers."""

from __future__ import annotations

import datetime as dt

from adapter_inputs import messages, published, reasons

CSV = "ems.csv"
RADIO = "radio_kpi.v1"
HEADER = (
    "NE Name,Start Time,ECI,PCI,EARFCN,RSRP (dBm),RSRQ (dB),SINR (dB),DL Throughput (kbps),"
    "UL Throughput (kbps),PRB Usage (%),Active UEs,Latency (ms)"
)
LINE = "an-0007,2025-11-25 01:02:03,5378371,101,1850,-95.5,-10.5,12.3,45000,8000,25,12,23.4"
EXPECTED = {
    "node_id": "an-0007",
    "event_time": dt.datetime(2025, 11, 25, 1, 2, 3, tzinfo=dt.timezone.utc),
    "cell_id": 5378371,
    "pci": 101,
    "earfcn": 1850,
    "band": None,
    "rsrp_dbm": -95.5,
    "rsrq_db": -10.5,
    "sinr_db": 12.3,
    "dl_throughput_mbps": 45.0,
    "ul_throughput_mbps": 8.0,
    "latency_ms": 23.4,
    "prb_utilization_pct": 25.0,
    "connected_ues": 12,
    "latitude": None,
    "longitude": None,
}


def export(*lines: str, header: str = HEADER, newline: str = "\r\n") -> bytes:
    return newline.join([header, *lines, ""]).encode()


def line_with(column: int, value: str) -> str:
    cells = LINE.split(",")
    cells[column] = value
    return ",".join(cells)


def test_an_export_line_becomes_a_canonical_row_with_naive_times_as_utc():
    assert published(CSV, export(LINE)) == {RADIO: [EXPECTED]}


def test_several_lines_in_one_export_yield_several_rows():
    later = LINE.replace("01:02:03", "01:02:04")
    rows = published(CSV, export(LINE, later))[RADIO]
    assert [row["event_time"].second for row in rows] == [3, 4]


def test_bom_lf_quotes_and_blank_lines_read_the_same():
    quoted = (
        '"an-0007","2025-11-25 01:02:03",5378371,101,1850,-95.5,-10.5,12.3,45000,8000,25,12,23.4'
    )
    variants = (
        b"\xef\xbb\xbf" + export(LINE),
        export(LINE, newline="\n"),
        export(quoted),
        export("", LINE, ""),
    )
    for value in variants:
        assert published(CSV, value) == {RADIO: [EXPECTED]}, value


def test_header_names_are_matched_ignoring_case_spacing_and_units_which_are_converted():
    header = (
        "  ne_name ,START TIME,Cell ID,pci,earfcn,rsrp,rsrq,sinr,DL Throughput [Mbit/s],"
        "ul throughput (bps),PRB usage,Connected UEs,Latency (s)"
    )
    line = "an-0007,2025-11-25T02:02:03+01:00,5378371,101,1850,-95.5,-10.5,12.3,45,8000000,25,12,2"
    (row,) = published(CSV, export(line, header=header))[RADIO]
    assert row == EXPECTED | {"latency_ms": 2000.0}


def test_rfc3339_fractions_beyond_microseconds_are_truncated():
    line = line_with(1, "2025-11-25T01:02:03.123456789Z")
    (row,) = published(CSV, export(line))[RADIO]
    assert row["event_time"] == EXPECTED["event_time"].replace(microsecond=123456)


def test_unknown_columns_are_ignored_and_empty_cells_are_null():
    header = HEADER + ",Vendor Specific Counter"
    line = line_with(6, "") + ",77"
    (row,) = published(CSV, export(line, header=header))[RADIO]
    assert (row["rsrq_db"], row["rsrp_dbm"]) == (None, -95.5)


def test_a_line_with_the_wrong_field_count_quarantines_the_export_naming_the_line():
    assert messages(CSV, export(LINE, LINE + ",extra")) == [
        "line 3 has 14 fields, the header has 13"
    ]


def test_a_bad_number_names_its_line_and_column():
    later = line_with(1, "2025-11-25 01:02:04")
    assert messages(CSV, export(later, line_with(5, "strong"))) == [
        "line 3: rsrp_dbm='strong' is not a number"
    ]


def test_an_integer_column_refuses_decimals():
    assert messages(CSV, export(line_with(11, "1.5"))) == [
        "line 2: connected_ues='1.5' is not an integer"
    ]


def test_nan_and_infinity_cells_are_not_finite():
    assert reasons(CSV, export(line_with(7, "NaN")), export(line_with(5, "-inf"))) == [
        "not_finite",
        "not_finite",
    ]


def test_missing_required_column_is_named():
    header = HEADER.replace("Active UEs", "Other")
    assert messages(CSV, export(LINE, header=header)) == ["connected_ues is required but missing"]


def test_times_that_are_not_times_or_far_away_are_bad_timestamps():
    assert messages(
        CSV,
        export(line_with(1, "yesterday")),
        export(line_with(1, "2199-01-01 00:00:00")),
    ) == [
        "line 2: event_time='yesterday' is not a time",
        "line 2: event_time='2199-01-01 00:00:00' is outside 2000-01-01..2100-01-01",
    ]


def test_out_of_range_values_are_refused_by_the_schema():
    assert messages(CSV, export(line_with(3, "600"))) == ["pci=600 is outside [0, 503]"]


def test_an_unknown_unit_in_the_header_is_refused():
    header = HEADER.replace("DL Throughput (kbps)", "DL Throughput (furlongs)")
    assert reasons(CSV, export(LINE, header=header)) == ["unknown_unit"]


def test_a_header_without_data_lines_has_no_measurement():
    assert reasons(CSV, export()) == ["no_measurement"]


def test_an_unterminated_quote_is_invalid_csv():
    assert messages(CSV, export(line_with(0, '"an-7'))) == ["line 2: unexpected end of data"]


def test_sql_and_control_characters_in_text_are_published_verbatim():
    node = "an-1'; DROP TABLE radio_kpi; --\u0007\u0000"
    (row,) = published(CSV, export(line_with(0, node)))[RADIO]
    assert row["node_id"] == node


def test_a_quoted_cell_may_hold_commas_and_newlines():
    node = 'an-7, "north"\nsite'
    quoted = '"' + node.replace('"', '""') + '"'
    (row,) = published(CSV, export(line_with(0, quoted)))[RADIO]
    assert row["node_id"] == node
