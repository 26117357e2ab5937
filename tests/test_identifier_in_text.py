"""A subscriber's identifier in public text is quarantined: text is published as the node sent it.

The check (``validators/quality.py``, ``identifier_in_text``) looks for exactly 14 or 15 digits in
a row (an IMSI's or IMEI's shape; a 14-digit date and time passes), or an ICCID's 19-20 from 89,
in every public text field a node fills as it likes.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.decode import raw_batch
from pipelines.protect import Protection
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.fields import DEVICE_PROOF_FIELDS
from schemas.node import NODE_HEARTBEAT_V1
from schemas.registry import ALL_SCHEMAS, SPEED_TEST_V2
from validators.quality import check_stateless, free_text_fields

START_MS = 1_764_000_000_000
HEARTBEAT = {
    "format": "rda.node.v1",
    "kind": "node_heartbeat",
    "node": "an-0000",
    "ts_ms": START_MS,
    "status": "online",
    "uptime_s": 86400,
    "power": {"source": "solar", "battery_pct": 66.3},
    "temp_c": 22.7,
    "fw": "2.4.1",
}
IMSI = "214070585943909"


def heartbeats(*firmware: str) -> pa.RecordBatch:
    """Standardized heartbeat rows, one per firmware string, as the stage checks them."""
    values = [
        json.dumps({**HEARTBEAT, "fw": fw, "ts_ms": START_MS + 1000 * i}).encode()
        for i, fw in enumerate(firmware)
    ]
    raw = raw_batch(values, "rda.node.v1")
    raw = raw.set_column(3, "timestamp_ms", pa.array([START_MS] * len(values)))
    return standardize(raw, adapter_for("rda.node.v1")).published["node_heartbeat.v1"]


def test_an_imsi_in_a_firmware_string_is_quarantined_naming_the_field_not_the_value(tmp_path):
    values = [json.dumps({**HEARTBEAT, "fw": f"2.4.1-{IMSI}"}).encode()]
    raw = raw_batch(values, "rda.node.v1")
    raw = raw.set_column(3, "timestamp_ms", pa.array([START_MS]))
    result = Protection(str(tmp_path))(raw, standardize(raw, adapter_for("rda.node.v1")))
    assert result.quarantined.column("reason_code").to_pylist() == ["identifier_in_text"]
    assert result.quarantined.column("reason").to_pylist() == [
        "firmware holds a number of an IMSI's, IMEI's or ICCID's shape: public text may not carry "
        "a subscriber's identifier (the value is not repeated)"
    ]
    assert "node_heartbeat.v1" not in result.published


@pytest.mark.parametrize(
    "text",
    [
        IMSI,
        f"2.4.1-{IMSI}",
        f"imsi{IMSI}",
        "35891211375061",  # 14 digits
        f"{IMSI[:3]}.{IMSI}.example",
        "".join(chr(0xFF10 + int(d)) for d in IMSI),  # fullwidth digits
        "".join(chr(0x0660 + int(d)) for d in IMSI),  # Arabic-Indic digits
        f"{IMSI[:7]}\u200b{IMSI[7:]}",  # a zero-width space in the middle
        f"_{IMSI}_",  # 15 characters: too short for a hex string
        "".join("⁰¹²³⁴⁵⁶⁷⁸⁹"[int(d)] for d in IMSI),  # superscript digits
        f"{IMSI[:7]}\ufe0f{IMSI[7:]}",  # a variation selector in the middle
        f"{IMSI[:7]}\u3164{IMSI[7:]}",  # a Hangul filler, blank as well
        "8949010000123456789",  # a SIM's ICCID: 19 digits from 89
        "20251324153012",  # 14 digits that are no date (month 13)
    ],
)
def test_an_identifier_s_shape_anywhere_in_the_text_is_refused(text):
    assert check_stateless(NODE_HEARTBEAT_V1, heartbeats(text)).codes.to_pylist() == [
        "identifier_in_text"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "2.4.1",
        "1764000000000",  # a millisecond timestamp: 13 digits
        "1764000000000123",  # a microsecond one: 16
        "ndt-knwp4_1583603744_000000000000590E",  # M-Lab's test id: a hex counter
        "ndt-knwp4_1583603744_0000000000005900",
        "x_000000000000590E_000000000000591F",  # two hex strings side by side
        "build 3f2a000000000000009b1c7d",  # a digest's prefix
        "214070585943-909",  # broken up: not looked for (documented)
        "fw+34613357294",  # a phone number: cannot be told from other numbers
        "2.4.1-20251124153012",  # a build stamp: a date and time of 14 digits
        "x_20251124153012_20251124153013",
        "1764000000000000000",  # a nanosecond timestamp: 19 digits, not from 89
    ],
)
def test_other_numbers_pass(text):
    assert check_stateless(NODE_HEARTBEAT_V1, heartbeats(text)).codes.to_pylist() == [None]


def test_only_the_rows_holding_one_are_refused_among_repeated_values():
    rows = heartbeats("2.4.1", f"2.4.1-{IMSI}", "2.4.1", f"2.4.1-{IMSI}", "")
    assert check_stateless(NODE_HEARTBEAT_V1, rows).codes.to_pylist() == [
        None, "identifier_in_text", None, "identifier_in_text", None,
    ]  # fmt: skip


TEXTS = st.lists(
    st.one_of(
        st.text("0123456789", min_size=1, max_size=17),
        st.text("0123456789", min_size=13, max_size=16),  # an identifier's length, or next to it
        st.sampled_from(["20251124153012", "8949010000123456789"]),  # a build stamp, an ICCID
        st.sampled_from("aFx-._ "),
    ),
    max_size=8,
).map("".join)


DATE_TIME = re.compile(
    r"(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])([01]\d|2[0-3])[0-5]\d[0-5]\d"
)


def holds_an_identifier(text: str) -> bool:
    """The rule, said another way: 19 or 20 digits in a row from 89 anywhere; or, in a word
    (letters and digits) that is not a hex string of 16 or more, a run of exactly 15 digits,
    or of 14 that is not a date and time."""
    if any(len(run) in (19, 20) and run.startswith("89") for run in re.findall(r"\d+", text)):
        return True
    for word in re.split(r"[^0-9A-Za-z]", text):
        if len(word) >= 16 and re.fullmatch(r"[0-9A-Fa-f]+", word):
            continue
        for run in re.findall(r"[0-9]+", word):
            if len(run) == 15 or (len(run) == 14 and not DATE_TIME.fullmatch(run)):
                return True
    return False


@given(TEXTS)
def test_a_text_is_refused_exactly_when_a_word_not_hex_has_14_or_15_digits_in_a_row(text):
    expected = "identifier_in_text" if holds_an_identifier(text) else None
    assert check_stateless(NODE_HEARTBEAT_V1, heartbeats(text)).codes.to_pylist() == [expected]


def test_the_fields_looked_at_are_the_public_text_a_node_writes_as_it_likes():
    assert free_text_fields(NODE_HEARTBEAT_V1) == {"node_id", "firmware"}
    assert free_text_fields(SPEED_TEST_V2) == {
        "source", "test_id", "node_id", "server", "server_site", "client_name", "source_version",
    }  # fmt: skip
    device_hex = {f.name for f in DEVICE_PROOF_FIELDS}
    for schema in ALL_SCHEMAS:
        looked_at = free_text_fields(schema)
        assert not looked_at & device_hex  # checked as hex already
        for field in schema.fields:
            if field.name in looked_at:
                assert field.allowed is None and field.privacy.value == "public"


FULLWIDTH = str.maketrans("0123456789aFx", "０１２３４５６７８９ａＦｘ")


@given(st.lists(st.tuples(TEXTS, st.booleans(), st.booleans()), min_size=1, max_size=6))
def test_a_disguised_text_is_judged_as_its_plain_form_beside_plain_ones(texts):
    """Fullwidth characters and a zero-width space after each one: the text NFKC and the
    removal of invisible characters bring back; plain ASCII values in the same batch are
    judged apart from them (only those with 14 digits in a row can hold a match)."""
    disguised = [
        "".join(c + "\u200b" if spaced else c for c in (t.translate(FULLWIDTH) if wide else t))
        for t, wide, spaced in texts
    ]
    expected = ["identifier_in_text" if holds_an_identifier(t) else None for t, _, _ in texts]
    assert check_stateless(NODE_HEARTBEAT_V1, heartbeats(*disguised)).codes.to_pylist() == expected
