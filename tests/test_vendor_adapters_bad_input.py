"""Bad input every vendor adapter must survive: each ends quarantined with a reason, never lost.

The per-format cases (wrong types, missing fields, NaN, ranges, far timestamps, SQL-looking and
control characters) are in each adapter's own test module; here are the byte-level cases and the
property that arbitrary bytes or documents never raise and always reconcile.
"""

from __future__ import annotations

import json

import pytest
from adapter_inputs import json_values, raw, reasons
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ems_csv_adapter import LINE, export
from test_gnmi_adapter import NOTIFICATION, subscribe_response
from test_ripe_atlas_adapter import PING_5000, TRACE_4750

from pipelines.standardize import standardize, standardize_routed
from schemas.adapters import adapter_for
from schemas.adapters.base import MAX_MESSAGE_BYTES

GOOD = {
    "gnmi.json": subscribe_response(),
    "ems.csv": export(LINE),
    "ripe.atlas.result": json.dumps(PING_5000).encode(),
}
TRUNCATED = {
    "gnmi.json": "invalid_json",
    "ems.csv": "invalid_csv",
    "ripe.atlas.result": "invalid_json",
}
FORMATS = sorted(GOOD)


@pytest.mark.parametrize("wire_format", FORMATS)
def test_truncated_messages_are_quarantined(wire_format):
    good = GOOD[wire_format]
    cut = good[: len(good) * 2 // 3] if wire_format != "ems.csv" else export(LINE[:-20])
    assert reasons(wire_format, cut) == [TRUNCATED[wire_format]]


@pytest.mark.parametrize("wire_format", FORMATS)
def test_invalid_utf8_is_quarantined(wire_format):
    text = b"k.root" if wire_format == "ripe.atlas.result" else b"an-0007"
    bad = GOOD[wire_format].replace(text, text[:2] + b"\xff" + text[2:], 1)
    assert bad != GOOD[wire_format]
    assert reasons(wire_format, bad) == ["invalid_utf8"]


@pytest.mark.parametrize("wire_format", FORMATS)
def test_empty_messages_and_tombstones_are_told_apart(wire_format):
    assert reasons(wire_format, b"", None) == ["empty_message", "tombstone"]


@pytest.mark.parametrize("wire_format", FORMATS)
def test_messages_over_the_size_limit_are_refused_unread(wire_format):
    assert reasons(wire_format, GOOD[wire_format] + b" " * MAX_MESSAGE_BYTES) == ["too_large"]


@pytest.mark.parametrize("wire_format", FORMATS)
def test_a_repeated_message_is_a_duplicate_of_the_first(wire_format):
    assert reasons(wire_format, GOOD[wire_format], GOOD[wire_format]) == ["duplicate"]


@pytest.mark.parametrize("wire_format", FORMATS)
def test_a_declared_but_unknown_version_of_a_format_is_not_guessed_at(wire_format):
    batch = raw(GOOD[wire_format], wire_format=wire_format + ".v2")
    result = standardize_routed(batch, "rda.node.v1")
    assert result.quarantined.column("reason_code").to_pylist() == ["unknown_format"]


@pytest.mark.parametrize("wire_format", FORMATS)
def test_without_a_header_or_topic_default_the_content_sniff_picks_the_adapter(wire_format):
    result = standardize_routed(raw(GOOD[wire_format]), None)
    assert (result.published_records, result.quarantined.num_rows) == (1, 0)


def test_the_sniff_also_tells_traceroutes_and_bare_notifications_apart():
    values = (json.dumps(TRACE_4750).encode(), json.dumps(NOTIFICATION).encode())
    result = standardize_routed(raw(*values), None)
    assert sorted(result.published) == ["path_trace.v1", "radio_kpi.v1"]


def _accounted(wire_format: str, values: list) -> None:
    result = standardize(raw(*values, wire_format=wire_format), adapter_for(wire_format))
    assert result.published_records + result.quarantined.num_rows == len(values)
    assert all(result.quarantined.column("reason").to_pylist())
    assert all(result.quarantined.column("reason_code").to_pylist())


@pytest.mark.parametrize("wire_format", FORMATS)
@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=12))
def test_arbitrary_bytes_never_raise_and_every_record_is_accounted_for(wire_format, values):
    _accounted(wire_format, values)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(PING_5000), "addr", "mode"]), json_values))
def test_arbitrary_ripe_documents_are_published_or_quarantined_never_raise(changes):
    _accounted("ripe.atlas.result", [json.dumps({**PING_5000, **changes}).encode()])
    _accounted("ripe.atlas.result", [json.dumps({**TRACE_4750, **changes}).encode()])


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["timestamp", "prefix", "update", "delete", "notification"]),
    json_values,
    json_values,
)
def test_arbitrary_gnmi_documents_are_published_or_quarantined_never_raise(member, value, val):
    notification = {**NOTIFICATION, member: value}
    _accounted("gnmi.json", [json.dumps({"update": notification}).encode()])
    mangled = {**NOTIFICATION, "update": [{"path": value, "val": val}]}
    _accounted("gnmi.json", [json.dumps(mangled).encode()])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=14), st.integers(0, 12))
def test_arbitrary_csv_cells_are_published_or_quarantined_never_raise(cells, column):
    line = LINE.split(",")
    line[column] = cells[0]
    _accounted("ems.csv", [export(",".join(line)), export(",".join(cells))])
