"""A RIPE Atlas target in the probe's own /24 or /48 is published as that network; sniffing
reads the whole message (a traceroute may name its measurement after a long hop list)."""

from __future__ import annotations

import json

from adapter_inputs import both_paths, published, raw
from test_ripe_atlas_adapter import PING_5000, RIPE, TRACE_4750

from pipelines.standardize import standardize_routed
from schemas.adapters import sniff

LINK, TRACE = "link_kpi.v1", "path_trace.v1"


def encode(document: dict) -> bytes:
    return json.dumps(document).encode()


def test_a_traceroute_to_a_host_of_the_probe_s_own_slash_24_publishes_the_network():
    inside = {**TRACE_4750, "dst_addr": "198.51.100.42", "dst_name": "nas.home.example"}
    (row,) = published(RIPE, encode(inside))[TRACE]
    assert row["target"] == "198.51.100.0/24"  # from 198.51.100.7: neither name nor address


def test_a_target_in_the_probe_s_local_network_is_generalized_too():
    inside = {**TRACE_4750, "dst_addr": "192.168.1.1", "dst_name": "192.168.1.1"}
    (row,) = published(RIPE, encode(inside))[TRACE]
    assert row["target"] == "192.168.1.0/24"  # src_addr 192.168.1.20


def test_an_ipv6_target_in_the_probe_s_slash_48_publishes_the_slash_48():
    inside = {**TRACE_4750, "af": 6, "from": "2001:db8:aa:1::7", "src_addr": "2001:db8:aa:1::7",
              "dst_addr": "2001:db8:aa:ff::1", "dst_name": "2001:db8:aa:ff::1"}  # fmt: skip
    (row,) = published(RIPE, encode(inside))[TRACE]
    assert row["target"] == "2001:db8:aa::/48"


def test_a_target_outside_the_probe_s_networks_is_published_as_it_is():
    (row,) = published(RIPE, encode(TRACE_4750))[TRACE]
    assert row["target"] == "193.0.14.129"


def test_pings_to_the_probe_s_network_agree_on_both_paths_and_are_generalized():
    own = {**PING_5000, "dst_addr": "198.51.100.1", "dst_name": "gw.home.example", "msm_id": 1}
    six = {**PING_5000, "af": 6, "from": "2001:db8:aa:1::7", "dst_addr": "2001:db8:aa::1",
           "msm_id": 3}  # fmt: skip
    bulk, one_by_one = both_paths(RIPE, encode(own), encode(PING_5000), encode(six))
    assert bulk == one_by_one
    peers = [row["peer"] for row in bulk[0][LINK]]
    assert peers == ["198.51.100.0/24", "k.root-servers.net", "2001:db8:aa::/48"]


def test_an_own_network_target_written_otherwise_is_generalized_on_both_paths():
    """A regex on the text let each of these pass for another network (red team)."""
    spellings = [
        ("::ffff:198.51.100.9", "198.51.100.7"),  # an IPv4-mapped target
        (" 198.51.100.9", "198.51.100.7"),  # spaces an address parses past
        ("198.51.100.9", "198.51.100.7 "),
        ("198.51.100.9", "::ffff:198.51.100.7"),  # an IPv4-mapped probe
    ]
    pings = [
        encode({**PING_5000, "dst_addr": target, "dst_name": target, "from": probe, "msm_id": i})
        for i, (target, probe) in enumerate(spellings, start=10)
    ]
    bulk, one_by_one = both_paths(RIPE, *pings)
    assert bulk == one_by_one
    assert [row["peer"] for row in bulk[0][LINK]] == ["198.51.100.0/24"] * len(spellings)


def test_a_traceroute_naming_its_measurement_after_a_long_hop_list_is_sniffed():
    hops = [{"hop": n, "result": [{"from": f"10.0.{n}.1", "rtt": 1.0 + n, "ttl": 60}] * 3}
            for n in range(1, 30)]  # fmt: skip
    late = {"fw": 4650, "type": "traceroute", "af": 4, "dst_addr": "193.0.14.129",
            "proto": "UDP", "timestamp": TRACE_4750["timestamp"], "result": hops,
            "prb_id": 6001, "msm_id": 5001}  # fmt: skip
    value = encode(late)
    assert value.index(b'"msm_id"') > 1024
    assert sniff(value) == RIPE
    result = standardize_routed(raw(value), "auto")  # no header, no default: sniffed
    assert result.quarantined.num_rows == 0
    assert result.published[TRACE].column("hop_count").to_pylist() == [29]
