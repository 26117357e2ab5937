"""The simulated fleet: deterministic, realistic, and able to inject every defect kind."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from schemas.radio import RADIO_KPI_V1
from simulator.fleet import DEFECT_KINDS, generate

START_MS = 1_764_000_000_000


def test_same_seed_gives_identical_messages():
    first = [(m.key, m.value) for m in generate(5, 20, 1, START_MS, seed=3)]
    second = [(m.key, m.value) for m in generate(5, 20, 1, START_MS, seed=3)]
    assert first == second


def test_another_seed_gives_another_fleet():
    first = [m.value for m in generate(5, 20, 1, START_MS, seed=3)]
    second = [m.value for m in generate(5, 20, 1, START_MS, seed=4)]
    assert first != second


def radio_reports(messages):
    return [m for m in messages if json.loads(m.value)["kind"] == "radio_kpi"]


def test_every_node_reports_every_interval_for_each_of_its_cells():
    messages = radio_reports(generate(3, 10, 2, START_MS, seed=1))
    per_node = Counter(m.key for m in messages)
    cells = {m.key: set() for m in messages}
    for m in messages:
        cells[m.key].add(json.loads(m.value)["cell"]["eci"])
    for node, count in per_node.items():
        assert count == 20 * len(cells[node])  # 10 s at 2 Hz per cell


def test_messages_are_keyed_by_node_id():
    for message in generate(4, 5, 1, START_MS, seed=2):
        assert json.loads(message.value)["node"].encode() == message.key


def test_clean_reports_are_within_the_canonical_ranges():
    ranges = {
        ("radio", "rsrp"): RADIO_KPI_V1.field("rsrp_dbm"),
        ("radio", "sinr"): RADIO_KPI_V1.field("sinr_db"),
        ("radio", "rsrq"): RADIO_KPI_V1.field("rsrq_db"),
        ("cell", "pci"): RADIO_KPI_V1.field("pci"),
        ("traffic", "ues"): RADIO_KPI_V1.field("connected_ues"),
    }
    for message in radio_reports(generate(20, 60, 1, START_MS, seed=5)):
        report = json.loads(message.value)
        for (group, name), field in ranges.items():
            assert field.minimum <= report[group][name] <= field.maximum


def test_bad_fraction_injects_every_defect_kind_and_marks_it():
    messages = list(generate(50, 60, 1, START_MS, seed=9, bad_fraction=0.2))
    defects = Counter(m.defect for m in messages if m.defect)
    assert set(defects) == set(DEFECT_KINDS)
    assert 0.15 < sum(defects.values()) / len(messages) < 0.25


def test_nodes_send_a_heartbeat_every_ten_intervals_and_a_speed_test_every_thirty():
    kinds = Counter(json.loads(m.value)["kind"] for m in generate(4, 60, 1, START_MS, seed=2))
    assert (kinds["node_heartbeat"], kinds["speed_test"]) == (4 * 6, 4 * 2)


def test_the_fleet_can_speak_every_vendor_format_with_the_format_on_each_message():
    for wire_format in ("gnmi.json", "ems.csv", "ripe.atlas.result"):
        messages = list(generate(3, 10, 1, START_MS, seed=1, wire_format=wire_format))
        assert messages and {m.wire_format for m in messages} == {wire_format}


def test_an_unknown_format_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"cannot emit 'x\.y'.*ems\.csv"):
        list(generate(1, 1, 1, START_MS, seed=1, wire_format="x.y"))
