"""The three records ``rda demo`` slips among the fleet's: built for a fleet of any size."""

from __future__ import annotations

import json

import pytest

from simulator.fleet import fleet_nodes, generate
from simulator.signing import FleetSigning
from streaming.demo_devices import FORGED_NODE, UNKNOWN_NODE, UNSIGNED_NODE, attacks

START_MS = 1_764_000_000_000


def fleet_messages(nodes: int, duration_s: float = 30) -> list:
    ids = [n.node_id for n in fleet_nodes(nodes, 7, hybrid=True)]
    signing = FleetSigning.for_nodes(ids, 7)
    return list(generate(nodes, duration_s, 1.0, START_MS, 7, hybrid=True, signing=signing))


def signed(message) -> bool:
    return any(name == "rda-sig" for name, _ in message.headers)


@pytest.mark.parametrize(
    ("nodes", "forged_by", "unsigned_by"),
    [(12, FORGED_NODE, UNSIGNED_NODE), (1, "an-0000", "an-0000"), (4, FORGED_NODE, "an-0000")],
)
def test_a_forged_an_unsigned_and_a_stranger_s_record_from_the_fleet_s_own(
    nodes, forged_by, unsigned_by
):
    messages = fleet_messages(nodes)
    forged, unsigned, stranger = attacks(messages, seed=7)

    original = next(m for m in messages if m.headers == forged.headers)  # its real envelope
    assert (forged.key, signed(forged)) == (forged_by.encode(), True)
    assert json.loads(forged.value)["traffic"] != json.loads(original.value)["traffic"]
    assert (unsigned.key, signed(unsigned)) == (unsigned_by.encode(), False)
    assert (stranger.key, signed(stranger)) == (UNKNOWN_NODE.encode(), True)
    assert json.loads(stranger.value)["node"] == UNKNOWN_NODE


def test_a_demo_too_short_for_any_report_has_no_attacks():
    assert attacks([], seed=7) == []
