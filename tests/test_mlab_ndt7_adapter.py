"""M-Lab NDT7 results → speed_test v2: every server generation's field set, measurement lists
present or absent, values computed by hand from the JSON, and nothing that names the client."""

from __future__ import annotations

import copy
import json
import operator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from adapter_inputs import json_values, raw
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.anonymize import PseudonymKey, anonymize
from pipelines.standardize import standardize, standardize_routed
from schemas.adapters import adapter_for
from schemas.adapters.ndt7_result import KNOWN_CLIENTS, known_client
from schemas.published import DEFAULT_PRIVACY
from schemas.service import SPEED_TEST_V2
from simulator import ndt7

NDT7 = "mlab.ndt7"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "mlab-ndt7"
START_MS = 1_764_000_000_000
BASE = ndt7.Ndt7Test(
    "download", "ndt-mlab1-lga03_1764000000_unsafe_00000000000157C6", START_MS, 10.0, 80.0,
    25.0, 2.0, "198.51.100.23", 50123, snapshots=4,
)  # fmt: skip


def decoded(*documents: dict | bytes) -> list[dict]:
    """Published speed_test rows (canonical, before privacy), or [] if quarantined."""
    values = [d if isinstance(d, bytes) else ndt7.encode(d) for d in documents]
    result = standardize(raw(*values, wire_format=NDT7), adapter_for(NDT7))
    return result.published.get(SPEED_TEST_V2.dataset, pa.table({})).to_pylist()


def rejected(document: dict | bytes) -> tuple[str, str]:
    value = document if isinstance(document, bytes) else ndt7.encode(document)
    result = standardize(raw(value, wire_format=NDT7), adapter_for(NDT7))
    (row,) = result.quarantined.to_pylist()
    return row["reason_code"], row["reason"]


def micros(text: str) -> datetime:
    """An RFC 3339 time with nanoseconds, by hand: truncated to microseconds, in UTC."""
    head, _, rest = text.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits) :].replace("Z", "+00:00")
    return datetime.fromisoformat(f"{head}.{digits[:6]}{zone}").astimezone(timezone.utc)


@pytest.mark.skipif(not SAMPLES.exists(), reason="the shared M-Lab sample is not here")
def test_the_real_sample_is_published_with_the_values_computed_by_hand():
    (path,) = SAMPLES.glob("*.json")
    document = json.loads(path.read_bytes())
    test = document["Download"]
    last = test["ServerMeasurements"][-1]["TCPInfo"]
    (row,) = decoded(path.read_bytes())
    assert row["test_id"] == test["UUID"]
    assert row["download_mbps"] == last["BytesAcked"] * 8 / last["ElapsedTime"]
    assert row["upload_mbps"] is None
    assert row["latency_ms"] == last["MinRTT"] / 1000
    assert row["retransmit_pct"] == last["BytesRetrans"] / last["BytesSent"] * 100
    assert row["event_time"] == micros(test["StartTime"])
    duration = micros(test["EndTime"]) - micros(test["StartTime"])
    assert row["duration_s"] == duration.total_seconds()
    assert (row["server"], row["source_version"]) == (document["ServerIP"], document["Version"])
    assert row["client_network"] == ".".join(document["ClientIP"].split(".")[:3]) + ".0/24"
    assert (row["source"], row["node_id"]) == ("mlab.ndt7", None)
    assert document["ClientIP"] not in json.dumps(row, default=str)
    metadata = {e["Name"]: e["Value"] for e in test["ClientMetadata"]}
    assert row["client_name"] == metadata["client_name"] == "ndt7-client-go-cmd"


def test_an_upload_is_measured_by_the_bytes_the_server_received():
    document = ndt7.result(replace(BASE, direction="upload", version="v0.14.2"))
    last = document["Upload"]["ServerMeasurements"][-1]["TCPInfo"]
    (row,) = decoded(document)
    assert (row["download_mbps"], row["retransmit_pct"]) == (None, None)
    assert row["upload_mbps"] == last["BytesReceived"] * 8 / last["ElapsedTime"]


def test_2019_servers_count_no_bytes_so_the_client_s_app_info_is_used():
    document = ndt7.result(replace(BASE, version="v0.12.0"))
    last = document["Download"]["ClientMeasurements"][-1]
    (row,) = decoded(document)
    assert row["download_mbps"] == last["app_info"]["num_bytes"] * 8 / last["elapsed"] / 1e6
    bbr = document["Download"]["ServerMeasurements"][-1]["bbr_info"]
    assert row["latency_ms"] == bbr["min_rtt"]  # already in ms before v0.14


def test_client_metadata_as_an_object_of_v0_10_is_read_like_the_list():
    document = ndt7.result(BASE)
    pairs = {e["Name"]: e["Value"] for e in document["Download"]["ClientMetadata"]}
    document["Download"]["ClientMetadata"] = pairs
    (row,) = decoded(document)
    assert (row["client_name"], row["server_site"]) == ("ndt7-client-go-cmd", "lga03")


def test_the_last_snapshot_holding_the_counters_is_the_summary():
    document = ndt7.result(BASE)
    snapshots = document["Download"]["ServerMeasurements"]
    summary = snapshots[-1]["TCPInfo"]
    snapshots.append({"BBRInfo": {"MinRTT": 1, "ElapsedTime": 99}})  # no TCPInfo
    (row,) = decoded(document)
    assert row["download_mbps"] == summary["BytesAcked"] * 8 / summary["ElapsedTime"]
    assert row["latency_ms"] == summary["MinRTT"] / 1000


def test_without_server_snapshots_the_client_s_application_bytes_count():
    document = ndt7.result(BASE)
    test = document["Download"]
    del test["ServerMeasurements"]
    test["ClientMeasurements"] = [{"AppInfo": {"NumBytes": 100_000_000, "ElapsedTime": 10**7}}]
    (row,) = decoded(document)
    assert (row["download_mbps"], row["latency_ms"]) == (80.0, None)


def test_a_result_with_no_byte_count_anywhere_measured_nothing():
    document = ndt7.result(BASE)
    document["Download"]["ServerMeasurements"] = [{"BBRInfo": {"MinRTT": 5}}]
    assert rejected(document) == (
        "no_measurement",
        "no Download snapshot holds a byte count with its elapsed time "
        "(TCPInfo, AppInfo, or the client's app_info)",
    )


def test_times_at_any_offset_are_utc_and_unsafe_uuids_lose_their_marker():
    document = ndt7.result(replace(BASE, utc_offset_h=-4))
    (row,) = decoded(document)
    assert document["Download"]["StartTime"].endswith("-04:00")
    assert row["event_time"] == datetime.fromtimestamp(START_MS / 1000, timezone.utc)
    assert row["test_id"] == "ndt-mlab1-lga03_1764000000_00000000000157C6"  # as M-Lab's ETL


def test_without_its_uuid_a_test_is_named_by_its_connection_info():
    document = ndt7.result(BASE)
    del document["Download"]["UUID"]
    (row,) = decoded(document)
    assert row["test_id"] == "ndt-mlab1-lga03_1764000000_00000000000157C6"


def test_go_s_zero_time_is_refused_naming_the_field():
    document = ndt7.result(BASE)
    document["Download"]["EndTime"] = "0001-01-01T00:00:00Z"
    assert rejected(document) == (
        "bad_timestamp",
        "EndTime='0001-01-01T00:00:00Z' is not an RFC 3339 time between 2000 and 2100",
    )


# The ndt7 clients whose client_name is published (M-Lab's own and the simulator's).
CLIENTS = {
    "ndt7-client-go-cmd", "ndt7-client-go", "ndt7-js", "libndt7.js", "ndt-server-example",
    "speed-measurementlab-net", "ndt7-android", "ndt7-client-android", "ndt7-client-ios",
    "murakami", "ist",
}  # fmt: skip


def client_name_published(name: str) -> str | None:
    (row,) = decoded(ndt7.result(replace(BASE, client_name=name)))
    return row["client_name"]


def test_the_published_client_names_are_exactly_the_known_ndt7_clients():
    assert KNOWN_CLIENTS == CLIENTS


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_known_client_is_published_as_it_named_itself(name):
    assert client_name_published(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "ndt7-js-0.0.6",
        "ndt7-client-go/0.8.0",
        "ndt7-client-go-cmd-0.1.0",
        "ndt7-js@0.0.6",
        "ndt7-client-ios_1.0",
        "murakami-v2",
        "ndt7-android-v0.20.17",
    ],
)
def test_a_known_client_with_a_version_is_published_as_it_named_itself(name):
    assert client_name_published(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "wifi-f4f5.e8ab.cd1e",  # a MAC address in Cisco's dotted form (red team)
        "ue-F4F5-E8AB-CD1E",  # the same MAC in dashed quads (red team)
        "host-2a01-cb1d-face-b00c",  # the client's IPv6 /64 (red team)
        "Jane-Does-iPhone",  # its owner's name (red team)
        "jane.doe@example.org",
        "4915112345678",
        "device-3f9a2c7e41d0",
        "198.51.100.23",
        "host-198.51.100.9",
        "dev-3c-22-fb-f9-8c-77",
        "tel+49-151-317-1000",
        "imsi-2620-1577-1399-000",
        "Jane's laptop",
        "my-speedtest",  # reads like software, but is not a known client
        "",
    ],
)
def test_a_client_name_that_is_not_a_known_client_is_published_as_null(name):
    assert client_name_published(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "ndt7-js-f4f5.e8ab.cd1e",
        "ndt7-client-go/0.8.0 (Jane's laptop)",
        "ndt7-js-0.0.6-jane",
        "Jane-ndt7-js",
        "ndt7-js-198.51.100.9",  # four numbers: an address, not a version
        "ndt7-js-491.511.234",  # numbers of three digits
        "ndt7-js-007",  # a leading zero
        "ndt7-js\n",
        "NDT7-JS",  # names are matched exactly, case included
        "ndt7-js-\u0661",  # a digit, but not 0-9
        "ndt7-js 0.0.6",
    ],
)
def test_a_known_client_with_anything_but_a_version_is_published_as_null(name):
    assert client_name_published(name) is None


def is_version(text: str) -> bool:
    """v?N(.N){0,2}, each N a number below 100 written without leading zeros."""
    numbers = text.removeprefix("v").split(".")
    return 1 <= len(numbers) <= 3 and all(n in {str(i) for i in range(100)} for n in numbers)


def is_known_client(text: str) -> bool:
    """A name of ``CLIENTS``, alone or followed by one of - / @ _ and a version."""
    return text in CLIENTS or any(
        text[: len(name) + 1] in {name + sep for sep in "-/@_"}
        and is_version(text[len(name) + 1 :])
        for name in CLIENTS
    )


# Names that are kept: a known client, with or without a version.
kept_names = st.builds(
    lambda name, version: name + version,
    st.sampled_from(sorted(CLIENTS)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda sep, v, numbers: sep + v + ".".join(numbers),
            st.sampled_from("-/@_"),
            st.sampled_from(["", "v"]),
            st.lists(st.integers(0, 99).map(str), min_size=1, max_size=3),
        ),
    ),
)
# Names that are not: a kept name in capitals, or with something before or after it.
SUFFIXES = [
    *("\n", " ", "0", ".1", ".100", "-jane", " (Jane's laptop)", ".f4f5.e8ab.cd1e", "-2a01-cb1d"),
    *("\u0661", "\uff11"),  # the digit 1 in two other scripts
]
near_misses = st.one_of(
    kept_names.map(str.upper),
    st.builds(operator.add, st.sampled_from(["x", " ", "jane-", "V", "-"]), kept_names),
    st.builds(operator.add, kept_names, st.sampled_from(SUFFIXES)),
    st.builds(operator.add, kept_names, st.text(max_size=20)),
)


@settings(max_examples=2000)
@given(st.one_of(st.text(max_size=80), kept_names, near_misses))
def test_no_client_name_but_a_known_client_with_a_version_ever_comes_out_unchanged(name):
    assert known_client(name) == (name if is_known_client(name) else None)


def test_no_address_port_or_token_of_the_client_reaches_a_row():
    for version in ndt7.VERSIONS:
        document = ndt7.result(replace(BASE, version=version))
        text = json.dumps(decoded(document), default=str)
        secrets = [BASE.client_ip, str(BASE.client_port), "access_token", "eyJ"]
        assert [s for s in secrets if s in text] == [], version


def test_the_client_network_is_its_24_or_48_and_mapped_ipv4_is_ipv4():
    cases = {"2001:db8:a:b::1": "2001:db8:a::/48", "::ffff:198.51.100.23": "198.51.100.0/24"}
    for address, network in cases.items():
        (row,) = decoded(ndt7.result(replace(BASE, client_ip=address)))
        assert row["client_network"] == network


def test_the_client_network_is_published_as_a_keyed_pseudonym_within_an_epoch():
    rows = decoded(ndt7.result(BASE))  # the same client twice in one day
    batch = pa.RecordBatch.from_pylist(rows * 2, schema=SPEED_TEST_V2.arrow_schema())
    key = PseudonymKey(b"k" * 32)
    published = anonymize(SPEED_TEST_V2, batch, pa.nulls(2, pa.string()), key, DEFAULT_PRIVACY)
    first, second = published.rows.to_pylist()
    assert first["client_network"] == second["client_network"] != rows[0]["client_network"]
    assert len(first["client_network"]) == 32 and "198.51.100" not in json.dumps(first, default=str)
    assert first["pseudonym_epoch"] == START_MS // 1000 // 86_400


def test_ndt5_and_two_subtests_in_one_result_are_not_ndt7_tests():
    both = ndt7.result(BASE)
    both["Upload"] = copy.deepcopy(both["Download"])
    assert rejected(both)[0] == "unknown_kind"
    assert rejected({"ServerIP": "192.0.2.1", "C2S": {}})[1].startswith("an NDT5 result")


def test_an_ndt7_result_without_a_header_is_sniffed():
    value = ndt7.encode(ndt7.result(BASE))
    result = standardize_routed(raw(value), "auto")
    assert result.published[SPEED_TEST_V2.dataset].num_rows == 1


@settings(max_examples=60)
@given(json_values, json_values)
def test_any_json_in_a_subtest_or_its_last_snapshot_is_published_or_quarantined(a, b):
    document = ndt7.result(BASE)
    document["Download"]["ClientMetadata"] = a
    document["Download"]["ServerMeasurements"][-1]["TCPInfo"]["BytesAcked"] = b
    result = standardize(raw(ndt7.encode(document), wire_format=NDT7), adapter_for(NDT7))
    codes = result.quarantined.column("reason_code").to_pylist()
    assert result.published_records + len(codes) == 1 and "adapter_error" not in codes
