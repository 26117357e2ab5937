"""The iperf3 adapter's own tests: run them with ``python -m pytest tests`` in this folder, in
the venv rda-pipeline is installed in (after ``pip install --no-deps -e .``)."""

from __future__ import annotations

import json

from rda_iperf3.adapter import Iperf3Adapter
from rda_iperf3.samples import CLIENT, iperf3_result

from schemas.adapters.toolkit import check_adapter, raw_records


def test_the_adapter_keeps_the_adapter_contract():
    samples = [iperf3_result(), iperf3_result(0), iperf3_result(protocol="UDP")]
    assert check_adapter(Iperf3Adapter, [*samples, iperf3_result(pretty=True)]) == []


def test_a_reverse_test_is_a_download_in_mbit_s_with_its_rtt():
    result = Iperf3Adapter().decode(raw_records([iperf3_result(reverse=1)], "iperf3.json"))
    (row,) = result.parts[0].rows.to_pylist()
    assert (row["source"], row["test_id"]) == ("iperf3", "wdfifvb7sh435efbnv53mi2ingad5fb2xzm3")
    assert (row["download_mbps"], row["upload_mbps"]) == (93.625498, None)
    assert (row["latency_ms"], row["duration_s"]) == (12.345, 10.04)
    assert row["server"] == "iperf.example.net"


def test_the_bulk_and_message_paths_give_the_same_rows():
    values = [iperf3_result(), iperf3_result(0), iperf3_result(pretty=True)]
    outcomes = []
    for bulk in (True, False):
        adapter = Iperf3Adapter()
        adapter.bulk = bulk
        result = adapter.decode(raw_records(values, "iperf3.json"))
        rows = result.parts[0].rows.sort_by("source_offset")
        outcomes.append(rows.to_pylist())
    assert outcomes[0] == outcomes[1]


def test_the_tester_s_address_reaches_no_row():
    result = Iperf3Adapter().decode(raw_records([iperf3_result()], "iperf3.json"))
    assert CLIENT not in json.dumps(result.parts[0].rows.to_pylist(), default=str)


def test_a_failed_test_is_rejected_with_iperf3_s_own_error():
    failed = json.dumps({"start": {}, "end": {}, "error": "unable to connect to server"})
    result = Iperf3Adapter().decode(raw_records([failed.encode()], "iperf3.json"))
    assert result.reject_codes.to_pylist() == ["no_measurement"]
    assert result.reject_reasons.to_pylist() == [
        "iperf3 reported an error: unable to connect to server"
    ]
