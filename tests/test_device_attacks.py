"""Attacks on device signatures beyond a changed report: hostile envelopes, a node vouching for a
row that names no node, a transferred node, and registries that are not the one meant."""

from __future__ import annotations

import random

import pytest
from device_inputs import (
    T0,
    cache,
    deployed,
    evm,
    fleet,
    header,
    ingest,
    messages,
    published_offsets,
    radio,
    reasons,
    signing,
    with_header,
)

from simulator import ndt7
from simulator.messages import Message
from simulator.signing import sign_batch
from streaming.chain import open_chain
from streaming.errors import SettingsError


def genuine(messages) -> tuple[Message, list[str]]:
    original = messages[radio(messages, "an-0001")[2]]
    return original, header(original).split(";")


def rebuilt(parts: list[str], **changes: str) -> str:
    names = ("version", "node", "key", "ms", "nonce", "index", "size", "path", "sig")
    return ";".join(changes.get(name, part) for name, part in zip(names, parts, strict=True))


HOSTILE = {
    "empty": lambda parts: "",
    "another version": lambda parts: rebuilt(parts, version="v2"),
    "a tenth field": lambda parts: rebuilt(parts) + ";00",
    "a field missing": lambda parts: ";".join(parts[:-2] + parts[-1:]),
    "upper-case key id": lambda parts: rebuilt(parts, key=parts[2].upper()),
    "a negative event time": lambda parts: rebuilt(parts, ms="-" + parts[3]),
    "an event time past int64": lambda parts: rebuilt(parts, ms="9" * 19),
    "non-ASCII digits": lambda parts: rebuilt(parts, ms="\u0661" * len(parts[3])),
    "a node id of 65 characters": lambda parts: rebuilt(parts, node="n" * 65),
    "a short nonce": lambda parts: rebuilt(parts, nonce=parts[4][:-2]),
    "a batch of none": lambda parts: rebuilt(parts, index="0", size="0"),
    "a batch past 65,535": lambda parts: rebuilt(parts, size="65536"),
    "a leaf outside its batch": lambda parts: rebuilt(parts, index=parts[6]),
    "a path of non-hex": lambda parts: rebuilt(parts, path="zz" * (len(parts[7]) // 2)),
    "a path one hash too long": lambda parts: rebuilt(parts, path=parts[7] + "00" * 32),
    "a trailing newline": lambda parts: rebuilt(parts) + "\n",
    "a NUL inside": lambda parts: rebuilt(parts, node="an-0001\x00"),
    "a replacement character (invalid UTF-8 in the header)": lambda parts: (
        "\ufffd" + rebuilt(parts)
    ),
    "a 1 MB header": lambda parts: rebuilt(parts, path="00" * 500_000),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_envelope_is_refused_and_nothing_else_is(messages, cache, attack):
    original, parts = genuine(messages)
    hostile = with_header(original, HOSTILE[attack](parts))
    result = ingest([*messages, hostile], cache)
    assert reasons(result) == {len(messages): "bad_signature"}
    assert published_offsets(result) == set(range(len(messages)))


def test_a_signed_report_whose_row_names_no_node_is_refused(messages, signing, cache):
    """An NDT7 result (speed_test v2 lets a row lack a node) signed by a node: published, its
    device proof would bind the row to no node, so it is refused, not published as signed."""
    report = {"node": "an-0001", "ts_ms": T0 + 5_000, "speed": {
        "down_bps": 12_500_000.0, "up_bps": 2_500_000.0, "latency_ms": 21.0,
    }}  # fmt: skip
    value = ndt7.from_speed_test(report, random.Random(1))[0]
    unsigned = Message(b"an-0001", value, T0 + 5_000, wire_format=ndt7.WIRE_FORMAT)
    (signed,) = sign_batch(signing.keys["an-0001"], [unsigned])
    result = ingest([signed], cache)
    assert reasons(result) == {0: "bad_signature"}
    assert "the report is of no node" in result.quarantined.column("reason")[0].as_py()


def test_a_transferred_node_keeps_its_keys_and_its_reports_verify(messages, fleet, signing, evm):
    cache = deployed(fleet, signing, evm)
    registry = cache.registry
    buyer = registry.w3.eth.accounts[3]
    registry.transfer("an-0002", buyer)
    assert registry.node("an-0002").owner == buyer
    result = ingest(messages, cache)
    assert reasons(result) == {} and published_offsets(result) == set(range(len(messages)))
    assert (
        cache.snapshot().nodes["an-0002"].keys
        == deployed(fleet, signing, evm).snapshot().nodes["an-0002"].keys
    )


# -- registries that are not the one meant -----------------------------------------------------


def test_a_node_registry_that_is_not_one_is_refused_at_start():
    chain = open_chain("embedded", None, None)
    with pytest.raises(SettingsError, match="is not a NodeRegistry"):
        chain.use_node_registry(chain.contract)  # the AnchorRegistry's address
    with pytest.raises(SettingsError, match="no contract at"):
        chain.use_node_registry("0x" + "11" * 20)  # nothing there (another chain's address)
    with pytest.raises(SettingsError, match="not an address"):
        chain.use_node_registry("0x1234")
    assert chain.nodes is None
