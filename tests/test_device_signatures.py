"""Device signatures at ingest: the fleet signs, ingest verifies against the NodeRegistry (on
the in-process EVM and on anvil over JSON-RPC, through the ingest cache), and every attack on a
report is refused with its reason while the genuine reports around it are published with their
proofs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter

import pyarrow as pa
import pytest
from device_inputs import (
    NODES,
    SEED,
    T0,
    cache,
    deployed,
    edited,
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
from hypothesis import given
from hypothesis import strategies as st

from pipelines.device_signatures import _time_mismatch
from proofs.merkle import root as merkle_root
from proofs.merkle_verify import verify_inclusion
from proofs.node_registry import token_id
from simulator.fleet import generate
from simulator.messages import Message
from simulator.signing import FleetSigning, root_and_proofs, sign_batch, simulated_signer

# -- genuine reports ----------------------------------------------------------------------------


def test_every_genuine_report_verifies_and_is_published_with_its_proof(messages, cache):
    result = ingest(messages, cache)
    assert reasons(result) == {} and result.published_records == len(messages)
    rows = result.published["radio_kpi.v1"].to_pylist()
    assert all(r["device_signed"] for r in rows)
    first = rows[0]
    envelope = header(messages[first["source_offset"]]).split(";")
    assert first["device_key_id"] == envelope[2]
    assert first["device_batch_index"] == int(envelope[5])
    assert (first["device_batch_size"], first["device_batch_path"]) == (
        int(envelope[6]),
        envelope[7],
    )
    assert first["device_signature"] == envelope[8] and len(first["device_payload_sha256"]) == 64
    # Sessions say they were verified, and carry no per-report proof (it would date them).
    sessions = result.published["subscriber_session.v1"]
    assert set(sessions.column("device_signed").to_pylist()) == {True}
    assert "device_signature" not in sessions.schema.names


def test_a_batch_split_across_chunks_verifies_record_by_record(messages, cache):
    first, second = messages[:37], messages[37:]
    assert reasons(ingest(first, cache)) == {}
    assert reasons(ingest(second, cache, first_offset=37)) == {}


def test_a_topic_configured_unsigned_publishes_every_report_marked_unsigned(messages):
    unsigned = [dataclasses.replace(m, headers=()) for m in messages]
    result = ingest(unsigned, None)
    rows = result.published["radio_kpi.v1"]
    assert reasons(result) == {} and set(rows.column("device_signed").to_pylist()) == {False}
    assert rows.column("device_signature").null_count == rows.num_rows


# -- what an intruder on the topic could send ------------------------------------------------


def test_a_forged_report_is_refused_and_its_batch_mates_are_published(messages, cache):
    victim = radio(messages, "an-0001")[3]
    forged = edited(messages[victim], lambda r: r["traffic"].update(dl_kbps=999_999.0))
    result = ingest([*messages, forged], cache)
    assert reasons(result) == {len(messages): "bad_signature"}
    assert victim in published_offsets(result)


def test_a_replayed_signature_with_a_new_event_time_is_refused(messages, cache):
    original = messages[radio(messages, "an-0002")[1]]
    parts = header(original).split(";")
    later = str(int(parts[3]) + 3_600_000)
    new_header = with_header(original, ";".join([*parts[:3], later, *parts[4:]]))
    new_payload = edited(original, lambda r: r.update(ts_ms=r["ts_ms"] + 3_600_000))
    both = with_header(new_payload, header(new_header))
    result = ingest([*messages, new_header, new_payload, both, original], cache)
    n = len(messages)
    assert reasons(result) == {
        n: "bad_signature",
        n + 1: "bad_signature",
        n + 2: "bad_signature",
        n + 3: "duplicate",  # the very same record again: its natural key is already there
    }


def test_truncated_reports_and_envelopes_are_refused(messages, cache):
    original = messages[radio(messages, "an-0000")[2]]
    text = header(original)
    attacks = [
        dataclasses.replace(original, value=original.value[:-10]),
        with_header(original, text[:-1]),  # the signature one hex digit short
        with_header(original, text.rsplit(";", 2)[0] + ";;" + text.rsplit(";", 1)[1]),  # no path
        with_header(original, text[: len(text) // 2]),
    ]
    result = ingest([*messages, *attacks], cache)
    n = len(messages)
    assert reasons(result) == {n + i: "bad_signature" for i in range(len(attacks))}


def test_cross_node_signatures_are_refused(messages, signing, cache):
    a, b = messages[radio(messages, "an-0000")[0]], messages[radio(messages, "an-0001")[0]]
    b_under_a = with_header(b, header(a))  # a's envelope on b's report
    b_new = edited(b, lambda r: r.update(ts_ms=r["ts_ms"] + 500))  # a report b never made
    (a_vouches_for_b,) = sign_batch(signing.keys["an-0000"], [b_new])  # signed by a
    parts = header(a).split(";")  # a's signature, claimed to be b's with b's key
    b_key = signing.keys["an-0001"].key_id.hex()
    a_claims_b = with_header(a, ";".join([parts[0], "an-0001", b_key, *parts[3:]]))
    result = ingest([*messages, b_under_a, a_vouches_for_b, a_claims_b], cache)
    n = len(messages)
    assert reasons(result) == {n: "bad_signature", n + 1: "bad_signature", n + 2: "bad_signature"}
    q = result.quarantined.to_pylist()
    assert "a node signs only its own reports" in q[1]["reason"]


def test_a_node_s_forgery_of_another_s_report_does_not_hide_the_genuine_one(
    messages, signing, cache
):
    genuine = radio(messages, "an-0001")[0]
    # an-0000 signs, with its own valid key, a report naming an-0001's cell at the same time:
    # its natural key is the genuine report's, and it comes first in the chunk.
    payload = edited(messages[genuine], lambda r: r["radio"].update(rsrp=-140.0))
    (forged,) = sign_batch(signing.keys["an-0000"], [payload])
    result = ingest([forged, *messages], cache)
    assert reasons(result) == {0: "bad_signature"}
    assert genuine + 1 in published_offsets(result)


def test_unsigned_and_unknown_nodes_reports_are_refused_with_their_reasons(messages, cache):
    original = messages[radio(messages, "an-0002")[4]]
    unsigned = dataclasses.replace(original, headers=())
    stranger = edited(original, lambda r: r.update(node="an-0404"))
    (stranger,) = sign_batch(simulated_signer("an-0404", SEED), [stranger])
    result = ingest([*messages, unsigned, stranger], cache)
    assert reasons(result) == {len(messages): "unsigned", len(messages) + 1: "unknown_node"}


def test_a_header_bomb_is_refused_without_being_parsed(messages, cache):
    original = messages[0]
    bomb = with_header(original, "v1;" + ";" * 200_000)
    assert reasons(ingest([bomb], cache)) == {0: "bad_signature"}


@given(position=st.integers(min_value=0), flip=st.sampled_from("0123456789abcdef;x"))
def test_no_changed_character_of_an_envelope_verifies(messages, cache, position, flip):
    original = messages[radio(messages, "an-0001")[5]]
    text = header(original)
    position %= len(text)
    if text[position] == flip:
        return
    changed = with_header(original, text[:position] + flip + text[position + 1 :])
    assert reasons(ingest([changed], cache)) != {}


def test_a_small_order_key_put_on_chain_vouches_for_no_report(messages, fleet, signing, evm):
    # The identity point as a node's key: OpenSSL accepts the signature R = identity, S = 0 for
    # any message under it, so an outsider's inventions were published as the node's.
    cache = deployed(fleet, signing, evm)
    identity = bytes([1]) + bytes(31)
    with pytest.raises(ValueError, match="small order"):
        cache.registry.rotate("an-0000", identity, T0 - 3_600_000)  # refused here, so sent raw
    rotate = cache.registry.contract.functions.rotateKey
    cache.registry._send(rotate(token_id("an-0000"), identity, T0 - 3_600_000))
    invented = edited(
        messages[radio(messages, "an-0000")[0]], lambda r: r["radio"].update(rsrp=-44.0)
    )
    key_id = hashlib.sha256(identity).hexdigest()
    ms = json.loads(invented.value)["ts_ms"]
    envelope = f"v1;an-0000;{key_id};{ms};{'00' * 16};0;1;;{(identity + bytes(32)).hex()}"
    result = ingest([with_header(invented, envelope)], cache)
    assert reasons(result) == {0: "bad_signature"}
    assert "point of small order" in result.quarantined.to_pylist()[0]["reason"]
    code, reason = cache.registry.node("an-0000").problem_at(key_id, ms)  # the auditor's check
    assert code == "bad_signature" and "point of small order" in reason


# -- the registry over time --------------------------------------------------------------------


def test_a_revoked_keys_later_reports_are_refused_and_its_earlier_ones_still_verify(
    messages, fleet, signing, evm
):
    cache = deployed(fleet, signing, evm)
    before = cache.refresh()
    cutoff = T0 + 15_000
    cache.registry.revoke_key("an-0001", 0, cutoff)
    result = ingest(messages, cache)
    node = [i for i, m in enumerate(messages) if m.key == b"an-0001"]
    later = {i for i in node if json.loads(messages[i].value)["ts_ms"] >= cutoff}
    assert later and set(node) - later
    assert reasons(result) == dict.fromkeys(later, "revoked_key")
    assert set(node) - later <= published_offsets(result)
    # A batch planned before the revocation decides as it did then, redone or not.
    assert reasons(ingest(messages, cache, at_block=before)) == {}


def test_a_session_signed_before_a_revocation_but_ending_after_it_is_refused(fleet, signing, evm):
    # A session's rows have no event_time: the envelope's time (the report's ts_ms) was checked
    # against the registry alone, so a stolen key backdated its reports of later sessions.
    cache = deployed(fleet, signing, evm)
    cutoff = T0 + 15_000
    cache.registry.revoke_key("an-0001", 0, cutoff)
    week_later = cutoff + 7 * 86_400_000

    def session(ts_ms: int, imsi: str) -> Message:
        report = {
            "format": "rda.node.v1", "kind": "subscriber_session", "node": "an-0001",
            "ts_ms": ts_ms, "subscriber": {"imsi": imsi},
            "session": {"cell": 1234, "start_ms": week_later - 60_000, "end_ms": week_later,
                        "bytes_up": 1, "bytes_down": 2},
        }  # fmt: skip
        return Message(b"an-0001", json.dumps(report).encode(), week_later)

    key = signing.keys["an-0001"]
    dated = sign_batch(key, [session(week_later, "001010000000001")])
    backdated = sign_batch(key, [session(cutoff - 1, "001010000000002")], counter=1)
    result = ingest([*dated, *backdated], cache)
    assert reasons(result) == {0: "revoked_key", 1: "bad_signature"}
    assert "with a session ending at" in result.quarantined.to_pylist()[1]["reason"]


@pytest.mark.parametrize(
    ("field", "micros", "ms", "mismatch"),
    [
        ("event_time", 1_764_000_000_000_000, 1_764_000_000_000, False),
        ("event_time", 1_764_000_000_000_384, 1_764_000_000_000, True),  # not a whole ms
        # ms * 1000 wraps int64 onto this row's time (2^64 = 18446744073709551616)
        ("event_time", 1_761_408_000_000_384, 18_448_505_481_709_552, True),
        ("session_end", 1_764_000_000_000_000, 1_764_000_000_000, False),
        ("session_end", 1_764_000_000_000_001, 1_764_000_000_000, True),  # after its signing
        ("session_end", 1_763_000_000_000_000, 1_764_000_000_000, False),  # reported later
    ],
)
def test_an_envelope_vouches_for_a_row_s_time_in_whole_milliseconds(field, micros, ms, mismatch):
    rows = pa.RecordBatch.from_pydict({field: pa.array([micros], pa.timestamp("us", tz="UTC"))})
    assert _time_mismatch(rows, pa.array([ms], pa.int64()), field).to_pylist() == [mismatch]


def test_after_a_rotation_the_new_key_signs_and_the_old_one_is_refused(fleet, signing, evm):
    cache = deployed(fleet, signing, evm)
    switch = T0 + 20_000
    new_key = simulated_signer("an-0002", SEED, key_number=1)
    cache.registry.rotate("an-0002", new_key.public_key, switch)
    unsigned = list(generate(NODES, 30, 1, T0, SEED))
    rotated = FleetSigning({**signing.keys}, signing.window_ms)
    late = [m for m in unsigned if m.timestamp_ms >= switch]
    early = [m for m in unsigned if m.timestamp_ms < switch]
    signed_early = list(rotated.sign(early))
    rotated.keys["an-0002"] = new_key
    signed_late = list(rotated.sign(late))
    old_key_late = [
        m for m in FleetSigning({**signing.keys}).sign(late) if m.key == b"an-0002"
    ]  # the old key keeps signing after its end
    result = ingest([*signed_early, *signed_late, *old_key_late], cache)
    n = len(signed_early) + len(signed_late)
    assert reasons(result) == {n + i: "revoked_key" for i in range(len(old_key_late))}
    assert Counter(m.key for m in signed_late)[b"an-0002"] > 0


def test_the_ingest_cache_folds_the_registrys_events_into_what_it_holds(fleet, signing, evm):
    cache = deployed(fleet, signing, evm)
    cache.registry.revoke_node("an-0000", T0 + 1)
    snapshot = cache.snapshot()
    held = {n.node_id: n for n in cache.registry.nodes()}
    assert set(snapshot.nodes) == set(held)
    assert snapshot.nodes["an-0000"].revoked_from_ms == T0 + 1
    for node_id, node in held.items():
        assert {k.key_id: k.public_key for k in node.keys} == {
            key_id: k.public_key for key_id, k in snapshot.nodes[node_id].keys.items()
        }


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70))
def test_a_nodes_batch_root_and_proofs_are_rfc9162s(leaves):
    """The simulated node's one-pass tree (``simulator/signing.py``) gives the root the verifier
    computes, and each leaf a proof the verifier accepts against it."""
    root, paths = root_and_proofs(leaves)
    assert root == merkle_root(leaves)
    assert len(paths) == len(leaves)
    for index, (leaf, path) in enumerate(zip(leaves, paths, strict=True)):
        assert verify_inclusion(leaf, index, len(leaves), path, root)
