"""The trust root in the proof core: identity documents, key validity, superseded pins,
version-1 registries, and a verdict (never a traceback) for hostile inputs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from audit_dataset import DATASET, first_failure, publish, rows
from web3 import EthereumTesterProvider, Web3

from proofs.anchor import AnchorRegistry, checksum_address, dataset_key
from proofs.audit import audit_log
from proofs.bundle import build_bundles, verify_bundle
from proofs.identity import IdentityError, build_identity, key_entry, parse_identity
from proofs.jcs import canonicalize
from proofs.leaves import leaf_bytes_for_batch
from proofs.log import LogRef
from proofs.manifest import all_manifests
from proofs.signing import publisher_key
from proofs.trust import Pin, TrustRoot
from proofs.verdict import INCOMPLETE, NOT_VERIFIED, VERIFIED
from proofs.verify import verify_dataset
from streaming.chain import ChainChanged, ChainContext, open_chain
from streaming.chain_binding import bind

V1_ARTIFACT = json.loads((Path(__file__).parent / "data" / "AnchorRegistry.v1.json").read_text())


def identity_for(chain: ChainContext, signer, keys=None) -> bytes:
    return build_identity(
        chain.chain_id,
        chain.contract,
        chain.registry.owner(),
        keys or [key_entry(signer)],
        [signer],
    )


# -- the document ------------------------------------------------------------------------------


def test_an_identity_document_round_trips_and_names_its_parts(tmp_path, chain):
    signer = publisher_key(tmp_path)
    raw = identity_for(chain, signer)
    identity = parse_identity(raw)
    assert (identity.chain_id, identity.registry) == (chain.chain_id, chain.contract)
    assert identity.signed_by == (signer.key_id,)
    assert identity.key(signer.key_id).valid_until is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["identity"].update(chain_id=0), "chain_id must be a positive integer"),
        (lambda d: d["identity"].update(registry="0x12"), "is not an address"),
        (lambda d: d["identity"].update(keys=[]), "keys must be a non-empty list"),
        (lambda d: d["identity"]["keys"][0].update(key_id="00" * 32), "is not SHA-256"),
        (lambda d: d["identity"]["keys"][0].update(valid_until=-1), "valid_from must be"),
        (lambda d: d.update(signatures=[]), "signatures must be a non-empty list"),
        (lambda d: d["signatures"][0].update(key_id=["x"]), "a key the identity does not list"),
        (lambda d: d["identity"].update(extra=1), "identity must have exactly"),
        (lambda d: d["identity"].update(chain_id=5), "does not verify over the identity"),
    ],
)
def test_a_malformed_or_unsigned_identity_is_refused_with_a_reason(
    tmp_path, chain, change, message
):
    document = json.loads(identity_for(chain, publisher_key(tmp_path)))
    change(document)
    with pytest.raises(IdentityError, match=message):
        parse_identity(canonicalize(document))


def test_an_identity_not_in_canonical_form_is_refused(tmp_path, chain):
    raw = identity_for(chain, publisher_key(tmp_path))
    with pytest.raises(IdentityError, match="canonical form"):
        parse_identity(json.dumps(json.loads(raw), indent=1).encode())
    with pytest.raises(IdentityError, match="not JSON"):
        parse_identity(b"\xff{")


# -- keys and their validity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_from", "valid_until", "message"),
    [(0, 1, "was valid only until 1"), (2**40, None, f"is valid only from {2**40}")],
)
def test_a_manifest_anchored_outside_its_keys_validity_is_not_verified(
    tmp_path, valid_from, valid_until, message
):
    chain = open_chain("embedded", None, None)
    signer = publisher_key(tmp_path)
    raw = identity_for(chain, signer, [key_entry(signer, valid_from, valid_until)])
    chain.registry.publish_identity(raw)
    chain.identity = raw
    publish(tmp_path, [rows(0, 4)], chain)
    name, detail = first_failure(
        verify_dataset(tmp_path / "published" / DATASET, trust=chain.trust_root())
    )
    assert name == "signature" and detail.endswith(message)


def test_a_replaced_identity_pinned_is_incomplete_and_says_to_pin_the_new_one(tmp_path):
    chain = open_chain("embedded", None, None)
    publish(tmp_path, [rows(0, 4)], chain)
    old = chain.identity
    signer, second = publisher_key(tmp_path), publisher_key(tmp_path / "second")
    new = identity_for(chain, signer, [key_entry(signer), key_entry(second, valid_from=10)])
    chain.registry.publish_identity(new)
    verdict = audit_log(
        tmp_path / "published" / DATASET, TrustRoot(Pin(identity=old), chain.registry.w3)
    )
    assert verdict.status == INCOMPLETE and verdict.first_failure is None
    identity = next(c for c in verdict.checks if c.name == "identity")
    assert "has replaced the pinned identity" in identity.detail
    current = TrustRoot(Pin(identity=new), chain.registry.w3)
    assert audit_log(tmp_path / "published" / DATASET, current).status == VERIFIED


def test_another_publishers_registry_is_refused_by_rda_run(tmp_path):
    chain = open_chain("embedded", None, None)
    stranger = publisher_key(tmp_path / "stranger")
    chain.registry.publish_identity(identity_for(chain, stranger))
    with pytest.raises(ChainChanged, match="is bound to another publisher"):
        bind(chain, tmp_path / "data")


# -- version-1 registries ------------------------------------------------------------------------


@pytest.fixture
def v1_world(tmp_path):
    """Checkpoints anchored in a registry of the first contract version (no identity, no links)."""
    w3 = Web3(EthereumTesterProvider())
    factory = w3.eth.contract(abi=V1_ARTIFACT["abi"], bytecode=V1_ARTIFACT["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor().transact({"from": w3.eth.accounts[0]})
    )
    address = receipt["contractAddress"]
    old = w3.eth.contract(address=address, abi=V1_ARTIFACT["abi"])
    checkpoints = publish(tmp_path, [rows(0, 6), rows(6, 4)], None)
    for c in checkpoints:
        call = old.functions.anchor(dataset_key(DATASET), c["tree_size"], bytes.fromhex(c["root"]),
                                    bytes.fromhex(c["manifest_sha256"]))  # fmt: skip
        w3.eth.wait_for_transaction_receipt(call.transact({"from": w3.eth.accounts[0]}))
    signer = publisher_key(tmp_path)
    raw = build_identity(
        w3.eth.chain_id, address, w3.eth.accounts[0], [key_entry(signer)], [signer]
    )
    return w3, address, raw, tmp_path / "published" / DATASET


def test_a_version_1_registry_still_verifies_its_anchors_but_is_incomplete(v1_world):
    w3, address, raw, dataset_dir = v1_world
    registry = AnchorRegistry(w3, address)
    assert (registry.version, registry.previous(DATASET, 10), registry.identity_hash()) == (
        1,
        None,
        None,
    )
    verdict = audit_log(dataset_dir, TrustRoot(Pin(identity=raw), w3))
    assert (verdict.status, verdict.first_failure) == (INCOMPLETE, None)
    states = {c.name: c.ok for c in verdict.checks}
    assert states == {
        "files": True, "root": True, "manifest": True, "signature": True, "identity": None,
        "anchor": True, "previous": True, "consistency": True, "anchored": True, "latest": True,
        "links": None,
    }  # fmt: skip


def test_rda_run_refuses_a_version_1_registry_and_says_how_to_move(v1_world, tmp_path):
    w3, address, _raw, _dir = v1_world
    chain = ChainContext("rpc", None, w3.eth.chain_id, AnchorRegistry(w3, address))
    with pytest.raises(ChainChanged, match=r"version-1 AnchorRegistry.*rda anchor --reanchor"):
        bind(chain, tmp_path / "other-data")


# -- hostile inputs get verdicts -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One published dataset and its chain, for the tests that only read them."""
    chain = open_chain("embedded", None, None)
    root = tmp_path_factory.mktemp("shared")
    checkpoints = publish(root, [rows(0, 30), rows(30, 20)], chain)
    return chain, (root / "published" / DATASET, checkpoints)


def _bundle(published) -> dict:
    dataset_dir, checkpoints = published
    table = pq.read_table(dataset_dir / "data" / "batch-0000.parquet").slice(2, 1)
    (bundle,) = build_bundles(LogRef.for_dataset(dataset_dir), [2], leaf_bytes_for_batch(table),
                              checkpoints[-1], checkpoints[-1])  # fmt: skip
    return bundle


HOSTILE_BUNDLES = [
    lambda b: [b],
    lambda b: b.update(bundle_version="1"),
    lambda b: b.update(checkpoint=None),
    lambda b: b.update(leaf_index=-1),
    lambda b: b.update(leaf_index=True),
    lambda b: b["checkpoint"].update(tree_size="50"),
    lambda b: b.update(leaf_hash="AB" * 32),
    lambda b: b.update(leaf_hash="ab" * 31),
    lambda b: b.update(audit_path="ab" * 32),
    lambda b: b.update(row=[1, 2]),
    lambda b: b.update(row={"x": float("nan")}),
    lambda b: b.update(row={"x": 2**60}),
    lambda b: b.update(log="other.v1"),
    lambda b: b.update(dataset="speed_test.v1"),
    lambda b: b.update(anchor="0x5FbDB2315678afecb367f032d93F642f64180aa3"),
    lambda b: b["anchor"].update(contract="5FbDB2315678afecb367f032d93F642f64180aa3"),
    lambda b: b["anchor"].update(contract=None),
    lambda b: b["anchor"].update(chain_id="31337"),
    lambda b: b["anchor"].update(transaction="0x1234"),
    lambda b: b["anchor"].update(block=-3),
    lambda b: b["anchor"].update(dataset_id="00" * 32),
    lambda b: b["anchor"].pop("dataset_id"),
    lambda b: b.pop("audit_path"),
]


@pytest.mark.parametrize(
    "change", HOSTILE_BUNDLES, ids=[str(i) for i in range(len(HOSTILE_BUNDLES))]
)
def test_any_malformed_bundle_gets_a_verdict_never_an_exception(shared, change):
    chain, published = shared
    bundle = copy.deepcopy(_bundle(published))
    changed = change(bundle)
    verdict = verify_bundle(changed if changed is not None else bundle, chain.trust_root())
    assert verdict.status == NOT_VERIFIED


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"dataset": 1}', b'{"dataset": "probe.v1", "checkpoint": {}}',
     b'{"dataset": "probe.v1", "checkpoint": {"tree_size": 50, "root": "' + b"ab" * 32
     + b'"}, "files": [{"path": "../../etc/passwd", "sha256": "' + b"00" * 32
     + b'", "rows": 1, "leaf_start": 0}]}'],
    ids=["empty", "text", "list", "types", "no-root", "path-escape"],
)  # fmt: skip
def test_a_hostile_manifest_gets_a_verdict_never_an_exception(published, chain, content):
    dataset_dir, _ = published
    all_manifests(dataset_dir)[-1].write_bytes(content)
    verdict = audit_log(dataset_dir, chain.trust_root())
    assert verdict.status == NOT_VERIFIED


def test_any_address_form_is_normalized_or_refused_clearly():
    address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert checksum_address(address.lower()) == address
    assert checksum_address("0x" + address[2:].upper()) == address
    for bad in ("", "0x", "5FbDB2315678afecb367f032d93F642f64180aa3", "0x" + "g" * 40, None, 7):
        with pytest.raises(ValueError, match="is not an address"):
            checksum_address(bad)
