"""``rda verify --bundle`` checks each proven row's device signature: node → row → root → anchor,
against the NodeRegistry the pinned publisher identity names, at the row's event time."""

from __future__ import annotations

import pyarrow as pa
import pytest
from audit_dataset import publish

from pipelines.device_signatures import REQUIRED, DeviceCheck
from pipelines.graph import standardize_chunk
from pipelines.protect import Protection
from proofs.bundle import build_bundles, verify_bundle
from proofs.leaves import leaf_bytes_for_batch
from proofs.log import LogRef
from proofs.node_registry import NodeRegistry
from proofs.trust import TrustRoot
from proofs.verdict import INCOMPLETE, NOT_VERIFIED, VERIFIED
from schemas.records import RAW_RECORD_SCHEMA, SIGNATURE_HEADER
from simulator.fleet import fleet_nodes, generate
from simulator.signing import FleetSigning
from streaming.chain import open_chain
from streaming.nodes import register_fleet

T0 = 1_764_000_000_000
SEED = 12


def published_rows(tmp_path, chain, signed: bool = True) -> pa.Table:
    """The fleet's radio rows as the pipeline publishes them (verified, protected)."""
    fleet = fleet_nodes(2, SEED, hybrid=False)
    signing = FleetSigning.for_nodes([n.node_id for n in fleet], SEED)
    registry = NodeRegistry.deploy(chain.registry.w3)
    register_fleet(registry, fleet, signing, valid_from_ms=T0 - 1)
    chain.use_node_registry(registry.address)
    messages = list(generate(2, 20, 1, T0, SEED, signing=signing))
    raw = pa.RecordBatch.from_pylist(
        [
            {"topic": "t", "partition": 0, "offset": i, "timestamp_ms": m.timestamp_ms,
             "key": m.key, "value": m.value, "format": m.wire_format,
             "signature": dict(m.headers)[SIGNATURE_HEADER].decode()}
            for i, m in enumerate(messages)
        ],
        schema=RAW_RECORD_SCHEMA,
    )  # fmt: skip
    devices = DeviceCheck(REQUIRED, chain.nodes.snapshot(), "t")
    if not signed:
        devices = DeviceCheck()
    result = standardize_chunk(raw, "rda.node.v1", Protection(str(tmp_path / "private")), None,
                               devices)  # fmt: skip
    return pa.Table.from_batches([result.published["radio_kpi.v1"]])


def bundles_of(root, table: pa.Table, chain, indices=(0, 5, 9), dataset="radio_kpi.v1"):
    (checkpoint,) = publish(root, [table], chain, dataset=dataset)
    log = LogRef.for_dataset(root / "published" / dataset)
    rows = leaf_bytes_for_batch(table.take(list(indices)))
    return build_bundles(log, list(indices), rows, checkpoint, checkpoint, dataset)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed")
    chain = open_chain("embedded", None, None)
    table = published_rows(root, chain)
    return chain, table, bundles_of(root, table, chain)


def device(verdict) -> tuple[bool | None, str]:
    (check,) = [c for c in verdict.checks if c.name == "device"]
    return check.ok, check.detail


def test_a_proven_row_is_verified_down_to_the_nodes_signature(signed):
    chain, _, bundles = signed
    for bundle in bundles:
        verdict = verify_bundle(bundle, chain.trust_root())
        assert verdict.status == VERIFIED, verdict.as_dict()
        ok, detail = device(verdict)
        assert ok is True and f"signed by node {bundle['row']['node_id']}" in detail
        assert chain.nodes.address in detail


def test_a_bundle_is_checked_against_the_pinned_identitys_node_registry_only(signed):
    chain, _, (bundle, *_) = signed
    trust = chain.trust_root()
    assert trust.identity_check().ok and trust.identity.node_registry == chain.nodes.address
    offline = verify_bundle(bundle)  # nothing pinned: nothing about the node is taken on trust
    assert offline.status == INCOMPLETE and device(offline)[0] is None


def test_a_publisher_that_moves_a_signed_row_in_time_is_caught(tmp_path):
    chain = open_chain("embedded", None, None)
    table = published_rows(tmp_path, chain)
    times = table.column("event_time").to_pylist()
    times[5] = times[5].replace(second=(times[5].second + 30) % 60)
    retimed = table.set_column(
        table.schema.get_field_index("event_time"),
        table.schema.field("event_time"),
        pa.array(times, table.schema.field("event_time").type),
    )
    (_, moved, _) = bundles_of(tmp_path, retimed, chain)
    verdict = verify_bundle(moved, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    assert verdict.first_failure.name == "device"
    assert "does not verify" in verdict.first_failure.detail


@pytest.mark.parametrize("kind", ["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def test_a_revocation_after_a_row_keeps_it_verified_one_before_it_does_not(tmp_path, request, kind):
    rpc_url = request.getfixturevalue("anvil").rpc_url if kind == "anvil" else None
    chain = open_chain(kind, rpc_url, None)
    table = published_rows(tmp_path, chain)
    (bundle,) = bundles_of(tmp_path, table, chain, indices=(4,))
    node, at = bundle["row"]["node_id"], bundle["row"]["event_time"]
    registry = chain.nodes.registry
    row_ms = int(table.column("event_time").cast(pa.int64())[4].as_py()) // 1000
    registry.revoke_key(node, 0, row_ms + 1)  # compromised later: this row stands
    assert verify_bundle(bundle, chain.trust_root()).status == VERIFIED
    registry.revoke_node(node, row_ms)  # the node is refused from this row's time on
    verdict = verify_bundle(bundle, chain.trust_root())
    assert verdict.status == NOT_VERIFIED, at
    assert device(verdict) == (False, f"node {node} is revoked from {row_ms} ms; the report "
                                      f"is of {row_ms}")  # fmt: skip


def test_a_bundle_read_on_another_chain_is_never_reported_signed(signed):
    """Another chain with the same registries at the same addresses (deployed in the same
    order) and the same nodes and keys: the pinned identity is not bound there, so nothing read
    from that chain's node registry counts."""
    chain, _, (bundle, *_) = signed
    other = open_chain("embedded", None, None)
    copy = NodeRegistry.deploy(other.registry.w3)
    assert copy.address == chain.nodes.address
    fleet = fleet_nodes(2, SEED, hybrid=False)
    signing = FleetSigning.for_nodes([n.node_id for n in fleet], SEED)
    register_fleet(copy, fleet, signing, valid_from_ms=T0 - 1)
    verdict = verify_bundle(bundle, TrustRoot(chain.trust_root().pin, other.registry.w3))
    assert verdict.status == NOT_VERIFIED and verdict.first_failure.name == "identity"
    assert device(verdict) == (None, "not checked: the publisher identity did not check out")


def test_rows_from_an_unsigned_source_are_never_reported_as_signed(tmp_path):
    chain = open_chain("embedded", None, None)
    table = published_rows(tmp_path, chain, signed=False)
    (bundle,) = bundles_of(tmp_path, table, chain, indices=(2,))
    verdict = verify_bundle(bundle, chain.trust_root())
    assert verdict.status == INCOMPLETE
    ok, detail = device(verdict)
    assert ok is None and "configured unsigned" in detail


def test_an_identity_without_a_node_registry_leaves_the_device_signature_unchecked(
    signed, tmp_path
):
    _, table, _ = signed
    other = open_chain("embedded", None, None)  # publishes an identity naming no node registry
    (bundle,) = bundles_of(tmp_path, table, other, indices=(1,))
    verdict = verify_bundle(bundle, other.trust_root())
    assert verdict.status == INCOMPLETE
    assert device(verdict) == (
        None,
        "not checked: the pinned publisher identity names no node registry (version 1)",
    )


@pytest.mark.parametrize(
    "field", ["device_signature", "device_batch_path", "device_key_id", "device_batch_index"]
)
def test_a_malformed_device_proof_is_refused_before_any_signature_is_checked(signed, field):
    from proofs.device import device_check

    chain, _, (bundle, *_) = signed
    row = dict(bundle["row"])
    row[field] = "zz" if isinstance(row[field], str) else -1
    check = device_check(row, chain.trust_root())
    assert (check.name, check.ok, check.detail.split(":")[0]) == (
        "device",
        False,
        "malformed device proof",
    )
