"""The RIPE Atlas adapter: ping and traceroute results of every firmware generation.

The fixtures follow RIPE Atlas's documented result format, one per firmware generation; the
real samples in ``../shared/samples/ripe-atlas`` are read too when they are there.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from adapter_inputs import both_paths, messages, published, reasons
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.adapters.ripe_bulk import bulk_pings

RIPE = "ripe.atlas.result"
LINK, TRACE = "link_kpi.v1", "path_trace.v1"
T0 = 1_764_032_523  # 2025-11-25T01:02:03Z
WHEN = dt.datetime(2025, 11, 25, 1, 2, 3, tzinfo=dt.timezone.utc)
PROBE_ADDRESSES = ("198.51.100.7", "192.168.1.20", "2001:db8::7")

PING_5000 = {
    "fw": 5080,
    "mver": "2.6.2",
    "lts": 12,
    "af": 4,
    "dst_addr": "193.0.14.129",
    "dst_name": "k.root-servers.net",
    "src_addr": "192.168.1.20",
    "from": "198.51.100.7",
    "proto": "ICMP",
    "ttl": 54,
    "size": 48,
    "result": [{"rtt": 10.0}, {"rtt": 14.0}, {"x": "*"}, {"rtt": 12.0}],
    "dup": 0,
    "rcvd": 3,
    "sent": 4,
    "min": 10.0,
    "max": 14.0,
    "avg": 12.0,
    "msm_id": 1001,
    "prb_id": 6001,
    "timestamp": T0,
    "msm_name": "Ping",
    "type": "ping",
    "group_id": 1001,
    "step": 240,
}
PING_ROW = {
    "link_id": "ripe-msm-1001-prb-6001",
    "event_time": WHEN,
    "node_id": "ripe-probe-6001",
    "peer": "k.root-servers.net",
    "link_type": "internet_path",
    "protocol": "icmp",
    "address_family": 4,
    "elevation_deg": None,
    "packets_sent": 4,
    "packets_received": 3,
    "latency_ms": 12.0,
    "latency_min_ms": 10.0,
    "latency_max_ms": 14.0,
    "jitter_ms": 3.0,  # |14-10|, |12-14|
    "loss_pct": 25.0,
    "capacity_mbps": None,
}
# Firmware 1: no type, no af; addr/name; firmware 0-era strings for numbers.
PING_FW1 = {
    "fw": 1,
    "addr": "2001:db8:1::1",
    "name": "anchor.example",
    "from": "2001:db8::7",
    "avg": "12.0",
    "min": "10.0",
    "max": "14.0",
    "dup": "0",
    "rcvd": "3",
    "sent": "4",
    "size": "56",
    "msm_id": 1001,
    "prb_id": "6001",
    "timestamp": str(T0),
}
# Firmware 4400: mode instead of af/proto, srcaddr, error replies and duplicate replies.
PING_4400 = {
    "fw": 4420,
    "mode": "ICMP4",
    "addr": "193.0.14.129",
    "name": "k.root-servers.net",
    "srcaddr": "192.168.1.20",
    "from": "198.51.100.7",
    "result": [{"rtt": 10.0}, {"rtt": 10.5, "dup": 1}, {"error": "sendto failed"}, {"rtt": 14.0}],
    "rcvd": 2,
    "sent": 3,
    "dup": 1,
    "min": 10.0,
    "max": 14.0,
    "avg": 12.0,
    "msm_id": 1001,
    "prb_id": 6001,
    "timestamp": T0,
}
TRACE_4750 = {
    "fw": 4790,
    "lts": -1,
    "af": 4,
    "dst_addr": "193.0.14.129",
    "dst_name": "193.0.14.129",
    "src_addr": "192.168.1.20",
    "from": "198.51.100.7",
    "proto": "UDP",
    "paris_id": 3,
    "size": 40,
    "msm_id": 5001,
    "prb_id": 6001,
    "msm_name": "Traceroute",
    "type": "traceroute",
    "timestamp": T0,
    "endtime": T0 + 9,
    "result": [
        {"hop": 1, "result": [{"from": "192.168.1.1", "rtt": 1.5, "size": 68, "ttl": 64}] * 3},
        {"hop": 2, "result": [{"x": "*"}, {"from": "10.0.0.1", "late": 2, "ttl": 63}, {"x": "*"}]},
        {
            "hop": 3,
            "result": [
                {"from": "203.0.113.9", "rtt": 9.0, "err": "N", "ttl": 250},
                {"from": "203.0.113.9", "rtt": 8.0, "ttl": 250, "icmpext": {"version": 2}},
            ],
        },
        {"hop": 4, "result": [{"from": "193.0.14.129", "rtt": 20.0, "ttl": 55}, {"x": "*"}]},
    ],
}
TRACE_ROW = {
    "trace_id": "ripe-msm-5001-prb-6001",
    "event_time": WHEN,
    "node_id": "ripe-probe-6001",
    "target": "193.0.14.129",
    "protocol": "udp",
    "address_family": 4,
    "hop_count": 4,
    "reached": True,
    "final_rtt_ms": 20.0,
    "hop_rtt_ms": [1.5, None, 8.0, 20.0],
    "timeouts": 3,
}
# Firmware 1 traceroutes are the command's text output.
TRACE_FW1 = {
    "fw": 1,
    "from": "2001:db8::7",
    "msm_id": 5001,
    "prb_id": 6001,
    "timestamp": T0,
    "result": (
        "traceroute to 193.0.14.129 (193.0.14.129), 30 hops max, 40 byte packets\n"
        " 1  192.168.1.1  1.5 ms  1.6 ms  1.7 ms\n"
        " 2  * 10.0.0.1  3.5 ms *\n"
        " 3  193.0.14.129  20.0 ms  21.0 ms  22.0 ms\n"
    ),
}


def encode(document: dict) -> bytes:
    return json.dumps(document).encode()


def changed(document: dict, **members) -> bytes:
    return encode({**document, **members})


def without(document: dict, *names: str) -> bytes:
    return encode({k: v for k, v in document.items() if k not in names})


def test_a_current_ping_result_becomes_a_link_row():
    assert published(RIPE, encode(PING_5000)) == {LINK: [PING_ROW]}


def test_firmware_1_pings_with_numbers_as_strings_and_no_af_read_the_same():
    (row,) = published(RIPE, encode(PING_FW1))[LINK]
    assert row == PING_ROW | {"peer": "anchor.example", "address_family": 6, "jitter_ms": None}


def test_firmware_4400_pings_take_af_and_protocol_from_mode_and_skip_dups_and_errors():
    (row,) = published(RIPE, encode(PING_4400))[LINK]
    expected = PING_ROW | {"packets_sent": 3, "packets_received": 2, "jitter_ms": 4.0}
    assert row == expected | {"loss_pct": (3 - 2) / 3 * 100}


def test_a_ping_nobody_answered_has_no_latency_and_full_loss():
    silent = changed(PING_5000, result=[{"x": "*"}] * 3, rcvd=0, sent=3, avg=-1, min=-1, max=-1)
    (row,) = published(RIPE, silent)[LINK]
    assert (row["latency_ms"], row["latency_min_ms"], row["loss_pct"]) == (None, None, 100.0)


def test_a_traceroute_is_summarized_hop_by_hop():
    assert published(RIPE, encode(TRACE_4750)) == {TRACE: [TRACE_ROW]}


def test_a_firmware_1_text_traceroute_is_parsed():
    (row,) = published(RIPE, encode(TRACE_FW1))[TRACE]
    assert (row["hop_count"], row["reached"], row["hop_rtt_ms"], row["timeouts"]) == (
        3,
        True,
        [1.5, 3.5, 20.0],
        2,
    )


def test_a_traceroute_whose_probe_could_not_send_is_published_unreached():
    failed = changed(
        TRACE_4750, result=[{"hop": 1, "error": "connect failed: Network is unreachable"}]
    )
    (row,) = published(RIPE, failed)[TRACE]
    assert (row["hop_count"], row["reached"], row["final_rtt_ms"]) == (1, False, None)


def test_endtime_stands_in_for_a_missing_timestamp():
    (row,) = published(RIPE, without(TRACE_4750, "timestamp"))[TRACE]
    assert row["event_time"] == WHEN + dt.timedelta(seconds=9)


def test_the_kind_is_inferred_when_type_and_msm_name_are_missing():
    assert set(published(RIPE, without(TRACE_4750, "type", "msm_name"))) == {TRACE}


def test_probe_addresses_are_never_published():
    rows = published(RIPE, encode(PING_5000), encode(PING_FW1), encode(TRACE_4750))
    text = json.dumps(rows, default=str)
    assert not [address for address in PROBE_ADDRESSES if address in text]


def test_other_measurement_types_are_unknown_kinds():
    assert reasons(RIPE, changed(PING_5000, type="dns"), encode({"fw": 5000, "msm_id": 1})) == [
        "unknown_kind",
        "unknown_kind",
    ]


def test_missing_probe_id_is_missing_required():
    assert messages(RIPE, without(PING_5000, "prb_id")) == ["link_id is required but missing"]


def test_wrong_types_and_non_numeric_strings_are_named():
    assert messages(RIPE, changed(PING_5000, sent=[4]), changed(PING_5000, avg="fast")) == [
        "sent must be an integer, got list",
        "avg must be a number, got 'fast'",
    ]


def test_nan_strings_and_out_of_range_values_are_refused():
    assert reasons(RIPE, changed(PING_5000, avg="NaN"), changed(PING_5000, rcvd=5, sent=4)) == [
        "not_finite",
        "out_of_range",
    ]


def test_far_future_and_past_timestamps_are_bad_timestamps():
    assert reasons(RIPE, changed(PING_5000, timestamp=10**12), changed(PING_5000, timestamp=0)) == [
        "bad_timestamp",
        "bad_timestamp",
    ]


def test_an_unknown_newer_firmware_is_read_as_the_latest_documented_one():
    assert published(RIPE, changed(PING_5000, fw=9999)) == {LINK: [PING_ROW]}


def test_sql_and_control_characters_in_the_target_name_are_published_verbatim():
    name = "x'; DROP TABLE link_kpi; --\u0007"
    (row,) = published(RIPE, changed(PING_5000, dst_name=name))[LINK]
    assert row["peer"] == name


SAMPLES = (
    Path(__file__).resolve().parents[2] / "shared" / "samples" / "ripe-atlas" / "results.jsonl"
)


@pytest.mark.skipif(not SAMPLES.exists(), reason="the shared RIPE Atlas samples are not here")
def test_the_real_samples_of_every_firmware_generation_are_all_published():
    values = SAMPLES.read_bytes().splitlines()
    rows = published(RIPE, *values)
    assert {dataset: len(found) for dataset, found in rows.items()} == {LINK: 4, TRACE: 4}


def test_the_bulk_path_and_the_message_path_agree_on_a_mixed_batch():
    def at(seconds: int, **members) -> bytes:
        return changed(PING_5000, timestamp=T0 + seconds, **members)

    values = (
        at(0),
        encode(PING_FW1),
        at(1)[:40],
        encode(TRACE_4750),
        at(2, proto="UDP6", result=[{"x": "*"}, {"rtt": 3.0, "dup": 1}, {"rtt": 5.5}]),
        None,
        at(3, avg=-1, min=-1, max=-1, rcvd=0, result=[{"x": "*"}] * 3),
        at(4, type="dns"),
        at(0),
        encode(PING_4400),
    )
    taken, _ = bulk_pings(pa.array(values, pa.binary()))
    assert taken.to_pylist() == [0, 4, 6, 8]  # the rest go message by message
    bulk, one_by_one = both_paths(RIPE, *values)
    assert bulk == one_by_one
    assert [(q["offset"], q["reason_code"]) for q in bulk[1]] == [
        (101, "duplicate"),  # firmware 1's result of the same probe, measurement and second
        (102, "invalid_json"),
        (105, "tombstone"),
        (107, "unknown_kind"),
        (108, "duplicate"),
        (109, "duplicate"),
    ]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(lambda r: {"rtt": r}, st.floats(0, 1e4, allow_nan=False)),
            st.just({"x": "*"}),
            st.builds(lambda r: {"rtt": r, "dup": 1}, st.floats(0, 1e4)),
            st.just({"error": "sendto failed"}),
        ),
        max_size=8,
    ),
    st.integers(0, 20),
    st.integers(0, 20),
    st.sampled_from(["ICMP", "UDP", "TCP", "icmp6", "SCTP"]),
    st.sampled_from([4, 6]),
)
def test_the_bulk_path_agrees_with_the_message_path_on_any_ping(result, sent, rcvd, proto, af):
    value = changed(PING_5000, result=result, sent=sent, rcvd=rcvd, proto=proto, af=af)
    bulk, one_by_one = both_paths(RIPE, value)
    assert bulk == one_by_one
