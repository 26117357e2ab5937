"""The node-JSON adapter: exact canonical rows, a specific reason for every bad record."""

from __future__ import annotations

import datetime as dt
import json
import math

import adapter_inputs
import pyarrow as pa
from adapter_inputs import json_values
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.standardize import standardize
from schemas.adapters import NodeJsonAdapter
from schemas.adapters.base import MAX_MESSAGE_BYTES
from schemas.fields import DEVICE_FIELDS
from schemas.radio import RADIO_KPI_V1
from schemas.records import MAX_REASON_CHARACTERS
from validators.quality import check_stateless

ADAPTER = NodeJsonAdapter()
RADIO = "radio_kpi.v1"
NODE_JSON = "rda.node.v1"
GOOD = {
    "format": "rda.node.v1",
    "kind": "radio_kpi",
    "node": "an-0007",
    "ts_ms": 1764032523123,
    "cell": {"eci": 5378371, "pci": 101, "earfcn": 1850},
    "radio": {"rsrp": -95.5, "rsrq": -10.5, "sinr": 12.3},
    "traffic": {"dl_kbps": 45000.0, "ul_kbps": 8000, "ues": 12},
    "latency_ms": 23.4,
    "loc": {"lat": 52.52, "lon": 13.405},
}


def raw(*values: bytes | None) -> pa.RecordBatch:
    return adapter_inputs.raw(*values, wire_format=NODE_JSON)


def encode(report: dict) -> bytes:
    return json.dumps(report).encode()


def with_change(path: str, value) -> bytes:
    report = json.loads(json.dumps(GOOD))
    *parents, leaf = path.split(".")
    node = report
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return encode(report)


_DELETE = object()


def reasons(*values: bytes | None) -> list[str]:
    return adapter_inputs.reasons(NODE_JSON, *values)


def test_a_good_report_becomes_one_canonical_row_in_canonical_units():
    result = standardize(raw(encode(GOOD)), ADAPTER)
    assert result.published[RADIO].to_pylist() == [
        {
            "node_id": "an-0007",
            "event_time": dt.datetime(2025, 11, 25, 1, 2, 3, 123000, tzinfo=dt.timezone.utc),
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
            "prb_utilization_pct": None,
            "connected_ues": 12,
            "latitude": 52.52,
            "longitude": 13.405,
            **dict.fromkeys(f.name for f in DEVICE_FIELDS),  # filled in by the signature check
            "source_topic": "t",
            "source_partition": 2,
            "source_offset": 100,
            "ingest_time": dt.datetime(2025, 11, 25, 1, 2, 4, tzinfo=dt.timezone.utc),
        }
    ]


def test_pretty_printed_json_spanning_lines_is_accepted():
    later = with_change("ts_ms", GOOD["ts_ms"] + 1000)
    result = standardize(raw(json.dumps(GOOD, indent=2).encode(), later), ADAPTER)
    assert result.published[RADIO].num_rows == 2


def test_truncated_json_is_quarantined_as_invalid_json():
    assert reasons(encode(GOOD)[:40]) == ["invalid_json"]


def test_invalid_utf8_is_quarantined_as_such():
    assert reasons(encode(GOOD)[:-1] + b"\xff}") == ["invalid_utf8"]


def test_empty_message_and_tombstone_are_told_apart():
    assert reasons(b"", None) == ["empty_message", "tombstone"]


def test_oversized_message_is_refused_before_parsing():
    assert reasons(b" " * (MAX_MESSAGE_BYTES + 1)) == ["too_large"]


def test_a_json_array_is_not_a_report():
    assert reasons(b"[1, 2]") == ["not_an_object"]


def test_nan_and_infinity_are_refused_whichever_parser_sees_them():
    nan, inf = with_change("radio.sinr", float("nan")), with_change("radio.rsrp", -math.inf)
    assert b"NaN" in nan and b"-Infinity" in inf
    assert reasons(nan, inf) == ["not_finite", "not_finite"]  # vectorized path
    # A broken message sends the whole batch through the per-message screen.
    broken = encode(GOOD)[:40]
    assert reasons(nan, inf, broken) == ["not_finite", "not_finite", "invalid_json"]


def test_wrong_types_are_named_including_booleans_posing_as_numbers():
    result = standardize(
        raw(with_change("traffic.ues", "many"), with_change("radio.rsrp", True)), ADAPTER
    )
    assert result.quarantined.column("reason").to_pylist() == [
        "traffic.ues must be int, got str",
        "radio.rsrp must be float/int, got bool",
    ]


def test_integers_beyond_64_bits_are_out_of_range():
    assert reasons(with_change("cell.eci", 2**70)) == ["out_of_range"]


def test_value_too_wide_for_its_canonical_type_is_out_of_range_not_wrapped():
    result = standardize(raw(with_change("cell.pci", 2**40)), ADAPTER)
    assert result.quarantined.column("reason").to_pylist() == [f"pci={2**40} is outside [0, 503]"]


def test_missing_required_field_is_named():
    result = standardize(raw(with_change("node", _DELETE)), ADAPTER)
    assert result.quarantined.column("reason").to_pylist() == ["node_id is required but missing"]


def test_unknown_format_and_kind_are_quarantined():
    assert reasons(with_change("format", "vendor.x"), with_change("kind", "heartbeat")) == [
        "unknown_format",
        "unknown_kind",
    ]


def test_timestamps_outside_a_plausible_clock_are_refused():
    assert reasons(with_change("ts_ms", 10**16), with_change("ts_ms", 0)) == [
        "bad_timestamp",
        "bad_timestamp",
    ]


def test_a_bad_timestamp_names_the_time_that_is_out_of_range():
    ts_ms = GOOD["ts_ms"]
    session = {
        **GOOD,
        "kind": "subscriber_session",
        "subscriber": {"imsi": "262019990000001"},
        "session": {"cell": 1, "start_ms": ts_ms - 60_000, "end_ms": 99_999_999_999_999},
    }
    result = standardize(raw(encode(session)), ADAPTER)  # fmt: skip
    assert result.quarantined.column("reason").to_pylist() == [
        "session.end_ms=99999999999999 is outside 2000-01-01..2100-01-01"
    ]
    assert result.quarantined.column("reason_code").to_pylist() == ["bad_timestamp"]


def test_a_reason_quotes_a_huge_value_cut_short():
    result = standardize(raw(with_change("format", "x" * 900_000)), ADAPTER)
    (reason,) = result.quarantined.column("reason").to_pylist()
    assert reason == '"format" is "' + "x" * 60 + '…", not "rda.node.v1"'


def test_a_reason_written_record_by_record_is_cut_short_too():
    result = standardize(raw(with_change("cell.pci", int("9" * 4000))), ADAPTER)
    (reason,) = result.quarantined.column("reason").to_pylist()
    assert reason.startswith("cell.pci=999") and reason.endswith("…")
    assert len(reason) == MAX_REASON_CHARACTERS


def test_sql_looking_and_control_characters_in_text_are_kept_verbatim():
    node = "an-1'; DROP TABLE radio_kpi; --\u0007"
    result = standardize(raw(with_change("node", node)), ADAPTER)
    assert result.published[RADIO].column("node_id").to_pylist() == [node]


def test_quarantine_keeps_the_raw_bytes_and_kafka_coordinates():
    bad = encode(GOOD)[:40]
    result = standardize(raw(encode(GOOD), bad), ADAPTER)
    row = result.quarantined.to_pylist()[0]
    assert (row["topic"], row["partition"], row["offset"], row["value"]) == ("t", 2, 101, bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=20))
def test_arbitrary_bytes_never_raise_and_every_record_is_accounted_for(values):
    result = standardize(raw(*values), ADAPTER)
    published_rows = sum(rows.num_rows for rows in result.published.values())
    assert result.published_records + result.quarantined.num_rows == len(values)
    assert published_rows == result.published_records  # one row per node-JSON record
    assert all(result.quarantined.column("reason").to_pylist())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(GOOD)), json_values, max_size=8))
def test_arbitrary_json_objects_are_published_only_when_they_satisfy_the_schema(document):
    report = {**GOOD, **document}
    result = standardize(raw(json.dumps(report).encode()), ADAPTER)
    assert result.published_records + result.quarantined.num_rows == 1
    if result.published_records:
        (rows,) = [rows for rows in result.published.values() if rows.num_rows]
        assert rows.column("node_id")[0].as_py() == report["node"]


def test_heartbeats_and_speed_tests_go_to_their_own_datasets_in_canonical_units():
    heartbeat = {
        "format": "rda.node.v1",
        "kind": "node_heartbeat",
        "node": "an-0007",
        "ts_ms": 1764032523000,
        "status": "online",
        "uptime_s": 3600,
        "power": {"source": "solar", "battery_pct": 80.5},
        "temp_c": 30.0,
        "fw": "2.4.1",
        "loc": {"lat": 1.5, "lon": 2.5, "source": "gps"},
    }
    speed = {
        "format": "rda.node.v1",
        "kind": "speed_test",
        "node": "an-0007",
        "ts_ms": 1764032523000,
        "speed": {
            "down_bps": 12_500_000,
            "up_bps": 2_500_000,
            "latency_ms": 20.0,
            "jitter_ms": 1.5,
            "server": "s.example",
        },
    }
    result = standardize(raw(encode(GOOD), encode(heartbeat), encode(speed)), ADAPTER)
    assert {ds: rows.num_rows for ds, rows in result.published.items()} == {
        "radio_kpi.v1": 1,
        "node_heartbeat.v1": 1,
        "speed_test.v2": 1,
    }
    test = result.published["speed_test.v2"].to_pylist()[0]
    assert (test["download_mbps"], test["upload_mbps"]) == (100.0, 20.0)  # bytes/s -> Mbit/s
    assert (test["source"], test["test_id"]) == ("rda.node", "an-0007/1764032523000")
    beat = result.published["node_heartbeat.v1"].to_pylist()[0]
    assert (beat["status"], beat["battery_pct"], beat["source_offset"]) == ("online", 80.5, 101)


def test_a_heartbeat_with_an_unknown_status_is_quarantined_naming_the_allowed_values():
    heartbeat = {
        "format": "rda.node.v1",
        "kind": "node_heartbeat",
        "node": "an-1",
        "ts_ms": 1764032523000,
        "status": "on fire",
    }
    result = standardize(raw(encode(heartbeat)), ADAPTER)
    assert result.quarantined.column("reason").to_pylist() == [
        "status=on fire is not one of: online, degraded, offline, maintenance"
    ]


def test_a_repeated_report_in_the_same_chunk_is_a_duplicate_naming_the_first():
    result = standardize(raw(encode(GOOD), encode(GOOD)), ADAPTER)
    assert result.published[RADIO].column("source_offset").to_pylist() == [100]
    assert result.quarantined.column("reason_code").to_pylist() == ["duplicate"]
    assert result.quarantined.column("reason").to_pylist() == [
        "same natural key (node_id, cell_id, event_time) as offset 100"
    ]


def test_an_unknown_version_of_the_wire_format_is_not_guessed_at():
    assert reasons(with_change("format", "rda.node.v2")) == ["unknown_format"]


def test_a_speed_test_without_its_node_is_refused_naming_the_node():
    speed = {"format": "rda.node.v1", "kind": "speed_test", "ts_ms": 1764032523000}
    speed["speed"] = {"down_bps": 12_500_000, "latency_ms": 20.0}
    assert adapter_inputs.messages(NODE_JSON, encode(speed)) == [
        "node is required (a speed test's id is its node and time)"
    ]


def _published_nodes(result) -> dict[int, str]:
    """Each published row's node id by its record's offset."""
    rows = result.published[RADIO].to_pylist()
    return {row["source_offset"]: row["node_id"] for row in rows}


def test_invalid_utf8_inside_a_string_is_quarantined_and_never_published():
    """Arrow's reader takes such bytes into a string column as they are: the duplicate check
    (DuckDB) then refused the staged file and stopped ``rda run`` for good (red team)."""
    surrogate = with_change("node", "an-\x00").replace(b"\\u0000", b"\xed\xa0\x80")
    stray = with_change("node", "an-\x00").replace(b"\\u0000", b"\xff")
    later = with_change("ts_ms", GOOD["ts_ms"] + 1000)
    result = standardize(raw(encode(GOOD), surrogate, stray, later), ADAPTER)
    assert result.quarantined.column("reason_code").to_pylist() == ["invalid_utf8"] * 2
    assert _published_nodes(result) == {100: "an-0007", 103: "an-0007"}


def test_no_message_can_move_its_neighbours_records_onto_other_offsets():
    """Two objects on one line, one object cut open and one closing it keep the row count
    while shifting the records between them by one (red team): each is refused instead."""
    two = encode({**GOOD, "node": "attacker"}) + encode({**GOOD, "node": "smuggled"})
    victims = [encode({**GOOD, "node": f"victim-{n}"}) for n in "xy"]
    cut_open, closing = encode({**GOOD, "node": "attacker"})[:-1] + b',"x":', b"{}}"
    result = standardize(raw(encode(GOOD), two, *victims, cut_open, closing), ADAPTER)
    assert _published_nodes(result) == {100: "an-0007", 102: "victim-x", 103: "victim-y"}
    assert result.quarantined.column("offset").to_pylist() == [101, 104, 105]


_PIECES = st.sampled_from(
    [b"{", b"}", b"{}", b'"node":"z"', b",", b'"x":', b"\n", b"[", b"]", b"1", b" "]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 9), st.lists(_PIECES, max_size=6)), max_size=12))
def test_every_published_row_is_the_report_its_own_record_holds(choices):
    """Good reports (their node named by their position) among fragments that could join or
    split across records: a row is only ever published for the record that holds it whole."""
    values = [
        with_change("node", f"n{position}") if isinstance(choice, int) else b"".join(choice)
        for position, choice in enumerate(choices)
    ]
    result = standardize(raw(*values), ADAPTER)
    published = _published_nodes(result) if RADIO in result.published else {}
    for offset, node in published.items():
        assert json.loads(values[offset - 100])["node"] == node
    assert result.published_records + result.quarantined.num_rows == len(values)


def test_a_kafka_timestamp_no_broker_could_set_is_quarantined_not_a_crash():
    """A producer dated its record 2400 (CreateTime): turning the lag into a double raised and
    stopped ``rda run`` for good (red team). Another dated its record and its event 2099: the
    clock-skew check passed it, and its partition's watermark went to 2099, closing every window
    before. A record cannot have been produced before 2000 or after it is read."""
    batch = raw(*(with_change("ts_ms", GOOD["ts_ms"] + 1000 * i) for i in range(4)))
    year_2099_ms, year_2400_ms = 4_084_000_000_000, 13_569_465_600_000
    stamps = pa.array([adapter_inputs.INGEST_MS, year_2400_ms, -1, year_2099_ms], pa.int64())
    batch = batch.set_column(batch.schema.get_field_index("timestamp_ms"), "timestamp_ms", stamps)
    rows = standardize(batch, ADAPTER).published[RADIO]
    checked = check_stateless(RADIO_KPI_V1, rows)
    assert checked.codes.to_pylist() == [None, *["bad_timestamp"] * 3]
    assert checked.reasons.to_pylist()[1] == (
        "the record's Kafka timestamp is 13569465600000000 µs after 1970: before 2000, or after "
        "it was read"
    )
