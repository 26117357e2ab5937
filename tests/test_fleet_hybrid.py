"""The hybrid network: ground AirNodes behind fiber, microwave or a high-altitude relay, relay
platforms and gateways as nodes of their own, every link reporting ``link_kpi`` — and what
weather, handovers and outages do to the links and to the radio KPIs behind them."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

from pipelines.standardize import standardize_routed
from schemas.records import RAW_RECORD_SCHEMA
from simulator.backhaul import LINK_EVERY
from simulator.fleet import fleet_nodes, generate

T0 = 1_764_000_000_000
NODES, SEED, SECONDS = 16, 4, 1800


@pytest.fixture(scope="module")
def reports() -> list[dict]:
    """Half an hour of a 16-node hybrid fleet, one report a node every 5 s (fast to make)."""
    messages = generate(NODES, SECONDS, 0.2, T0, SEED, hybrid=True)
    return [json.loads(m.value) for m in messages]


def links(reports) -> dict[str, list[dict]]:
    found = defaultdict(list)
    for r in reports:
        if r["kind"] == "link_kpi":
            found[r["node"]].append(r["link"])
    return found


def test_relay_platforms_and_gateways_are_nodes_of_their_own_classes():
    nodes = fleet_nodes(NODES, SEED)
    classes = Counter(n.node_class for n in nodes)
    assert classes == {"ground_airnode": 16, "high_altitude_relay": 8, "backhaul": 4}
    assert {n.node_id for n in nodes if n.node_class == "backhaul"} == {
        "gw-ber", "gw-mad", "gw-nbo", "gw-mex",
    }  # fmt: skip


def test_every_link_reports_at_its_interval_with_its_kind(reports):
    per_node = links(reports)
    ticks = SECONDS * 0.2
    assert set(per_node) == {n.node_id for n in fleet_nodes(NODES, SEED)}
    assert {len(v) for v in per_node.values()} == {int(ticks // LINK_EVERY)}
    kinds = Counter(v[0]["type"] for node, v in per_node.items() if node.startswith("an-"))
    assert set(kinds) == {"fiber", "microwave", "haps"}
    feeder = per_node["haps-ber-a"][0]
    assert (feeder["type"], feeder["peer"]) == ("haps", "gw-ber")


def test_a_haps_link_reports_its_elevation_and_hands_over_between_platforms(reports):
    haps = {
        n: v for n, v in links(reports).items() if n.startswith("an-") and v[0]["type"] == "haps"
    }
    assert haps
    for measurements in haps.values():
        assert all(10 <= m["elevation_deg"] <= 90 for m in measurements if m["received"])
    handovers = [
        (a["peer"], b["peer"])
        for v in haps.values()
        for a, b in itertools.pairwise(v)
        if a["peer"] != b["peer"]
    ]
    assert handovers, "platforms on their station circles swap places in half an hour"


def test_rain_fades_cut_capacity_and_outages_take_links_down(reports):
    measured = [m for v in links(reports).values() for m in v]
    faded = [m for m in measured if m["received"] and m["type"] in ("microwave", "haps")]
    full = {"microwave": 400.0, "haps": 150.0}
    assert any(m["capacity_mbps"] < 0.7 * full[m["type"]] for m in faded)
    down = [m for m in measured if m["received"] == 0]
    assert down and all(
        m["loss_pct"] == 100.0 and m["capacity_mbps"] == 0.0 and "rtt_avg_ms" not in m for m in down
    )


def test_an_outage_shows_in_the_radio_kpis_of_the_node_behind_it(reports):
    down_at = {
        (r["node"], r["ts_ms"])
        for r in reports
        if r["kind"] == "link_kpi" and r["link"]["received"] == 0
    }
    behind = [r for r in reports if r["kind"] == "radio_kpi" and (r["node"], r["ts_ms"]) in down_at]
    assert behind
    assert all(r["traffic"]["dl_kbps"] == 0.0 and r["latency_ms"] >= 3000 for r in behind)


def test_the_hybrid_fleet_is_deterministic_and_leaves_the_plain_fleet_as_it_was():
    first = [m.value for m in generate(4, 60, 1, T0, 2, hybrid=True)]
    assert first == [m.value for m in generate(4, 60, 1, T0, 2, hybrid=True)]
    plain = [m.value for m in generate(4, 60, 1, T0, 2)]
    assert not any(b"link_kpi" in v for v in plain)


def test_link_reports_are_published_as_link_kpi_rows():
    messages = list(generate(3, 10, 1, T0, 2, hybrid=True))
    raw = pa.RecordBatch.from_pylist(
        [
            {"topic": "t", "partition": 0, "offset": i, "timestamp_ms": m.timestamp_ms,
             "key": m.key, "value": m.value, "format": m.wire_format, "signature": None}
            for i, m in enumerate(messages)
        ],
        schema=RAW_RECORD_SCHEMA,
    )  # fmt: skip
    result = standardize_routed(raw, "rda.node.v1")
    assert result.quarantined.num_rows == 0
    rows = result.published["link_kpi.v1"].to_pylist()
    by_link = {r["link_id"]: r for r in rows}
    assert "bh-an-0000" in by_link and "feeder-haps-ber-a" in by_link
    feeder = by_link["feeder-haps-ber-a"]
    assert feeder["link_type"] == "haps" and feeder["elevation_deg"] > 0
    assert feeder["packets_sent"] == 100 and feeder["protocol"] == "twamp"
