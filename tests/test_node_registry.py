"""The NodeRegistry on the in-process EVM: nodes as ERC-721 tokens with signing keys whose
validity only shrinks, and the ingest cache's event fold that rebuilds it as of any block."""

from __future__ import annotations

import json

import pytest
from web3 import EthereumTesterProvider, Web3

from infra.solc import NODE_REGISTRY_ARTIFACT, NODE_REGISTRY_SOURCE, OPENZEPPELIN_VERSION
from proofs import node_registry
from proofs.node_registry import (
    MAX_NODES_PER_TX,
    REGISTER_GAS_BASE,
    REGISTER_GAS_PER_NODE,
    NodeRegistry,
    NodeRegistryRefused,
    fold_events,
    token_id,
)
from simulator.signing import simulated_signer

T0 = 1_764_000_000_000


def key(node: str, number: int = 0) -> bytes:
    return simulated_signer(node, key_seed=5, key_number=number).public_key


@pytest.fixture(scope="module")
def w3():
    return Web3(EthereumTesterProvider())


@pytest.fixture
def registry(w3) -> NodeRegistry:
    registry = NodeRegistry.deploy(w3)
    registry.register("an-0001", "ground_airnode", 0x8828308281FFFFF, key("an-0001"), T0)
    return registry


def test_a_registered_node_is_a_token_of_its_owner_with_its_class_cell_and_key(w3, registry):
    owner = w3.eth.accounts[3]
    registry.register("haps-ber-a", "high_altitude_relay", 0x881F1D4A7FFFFFF, key("h"), T0, owner)
    node = registry.node("haps-ber-a")
    assert (node.node_class, node.h3_cell, node.owner) == (
        "high_altitude_relay",
        0x881F1D4A7FFFFFF,
        owner,
    )
    assert registry.contract.functions.ownerOf(token_id("haps-ber-a")).call() == owner
    assert [(k.index, k.public_key, k.valid_from_ms, k.valid_until_ms) for k in node.keys] == [
        (0, key("h"), T0, None)
    ]
    assert registry.node("an-9999") is None


def test_rotation_ends_the_old_key_where_the_new_one_begins(registry):
    registry.rotate("an-0001", key("an-0001", 1), T0 + 60_000)
    node = registry.node("an-0001")
    old, new = node.keys
    assert (old.valid_from_ms, old.valid_until_ms) == (T0, T0 + 60_000)
    assert (new.valid_from_ms, new.valid_until_ms) == (T0 + 60_000, None)
    assert node.problem_at(old.key_id, T0 + 59_999) is None
    assert node.problem_at(old.key_id, T0 + 60_000)[0] == "revoked_key"
    assert node.problem_at(new.key_id, T0 + 60_000) is None


def test_revocation_refuses_later_reports_and_keeps_earlier_ones_valid(registry):
    registry.revoke_key("an-0001", 0, T0 + 30_000)
    node = registry.node("an-0001")
    key_id = node.keys[0].key_id
    assert node.problem_at(key_id, T0 + 29_999) is None
    code, reason = node.problem_at(key_id, T0 + 30_000)
    assert code == "revoked_key" and "valid only until" in reason
    registry.revoke_node("an-0001", T0 + 10_000)
    assert registry.node("an-0001").problem_at(key_id, T0 + 10_000)[0] == "revoked_key"
    with pytest.raises(NodeRegistryRefused, match="NotShortening"):  # validity only shrinks
        registry.revoke_key("an-0001", 0, T0 + 40_000)
    with pytest.raises(NodeRegistryRefused, match="NodeIsRevoked"):
        registry.revoke_node("an-0001", T0 + 20_000)


def test_a_transferred_node_answers_to_its_new_owner_only(w3, registry):
    new_owner = w3.eth.accounts[1]
    registry.transfer("an-0001", new_owner)
    assert registry.node("an-0001").owner == new_owner
    with pytest.raises(NodeRegistryRefused, match="NotNodeController"):
        registry.rotate("an-0001", key("an-0001", 1), T0 + 1000)  # the old owner
    registry.as_sender(new_owner).rotate("an-0001", key("an-0001", 1), T0 + 1000)
    assert len(registry.node("an-0001").keys) == 2
    # The registrar may still revoke (a compromised key), the stranger may not.
    with pytest.raises(NodeRegistryRefused, match="NotNodeController"):
        registry.as_sender(w3.eth.accounts[2]).revoke_node("an-0001", T0 + 5000)
    registry.revoke_node("an-0001", T0 + 5000)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda r: r.register("an-0001", "backhaul", 1, key("x"), T0), "ERC721InvalidSender"),
        (lambda r: r.register("an-0002", "backhaul", 1, key("an-0001"), T0), "KeyInUse"),
        (lambda r: r.rotate("an-0001", key("an-0001"), T0 + 1), "KeyInUse"),
        (lambda r: r.rotate("an-0001", key("y"), T0), "RotationNotAfterCurrentKey"),
        (lambda r: r.revoke_key("an-0001", 5, T0 + 1), "NoSuchKey"),
        (lambda r: r.revoke_key("an-0001", 0, T0 - 1), "NotShortening"),
        (lambda r: r.revoke_node("an-0404", T0), "ERC721NonexistentToken"),
    ],
)
def test_the_registry_refuses_what_would_break_a_nodes_history(registry, change, error):
    with pytest.raises(NodeRegistryRefused) as refused:
        change(registry)
    assert refused.value.error == error


def test_only_a_registrar_registers_and_node_ids_are_checked_by_the_contract_too(w3, registry):
    stranger = registry.as_sender(w3.eth.accounts[4])
    with pytest.raises(NodeRegistryRefused, match="AccessControlUnauthorizedAccount"):
        stranger.register("an-0100", "ground_airnode", 1, key("an-0100"), T0)
    call = registry.contract.functions.register(  # past the client's own check
        w3.eth.accounts[0], "an 0100; drop", 0, 1, key("an-0100"), T0
    )
    with pytest.raises(NodeRegistryRefused, match=r"^InvalidNodeId"):
        registry._send(call)


def test_the_event_fold_is_the_registry_as_of_any_block(w3, registry):
    registered = w3.eth.block_number
    registry.rotate("an-0001", key("an-0001", 1), T0 + 60_000)
    registry.transfer("an-0001", w3.eth.accounts[2])
    registry.register("gw-ber", "backhaul", 7, key("gw-ber"), T0)
    registry.revoke_node("gw-ber", T0 + 1)
    events = registry.events(0, w3.eth.block_number)
    assert fold_events(events) == {n.node_id: n for n in registry.nodes()}
    then = fold_events(events, at_block=registered)
    assert set(then) == {"an-0001"} and len(then["an-0001"].keys) == 1


def test_a_fleet_registers_in_one_transaction_all_or_nothing(w3, registry):
    fleet = [(f"an-{i:04d}", "ground_airnode", i, key(f"an-{i:04d}"), None) for i in range(2, 6)]
    block = w3.eth.block_number
    registry.register_many(fleet, T0)
    assert w3.eth.block_number == block + 1
    assert {n.node_id for n in registry.nodes()} == {
        "an-0001",
        "an-0002",
        "an-0003",
        "an-0004",
        "an-0005",
    }
    clash = [("an-0100", "backhaul", 1, key("an-0100"), None), fleet[0]]
    with pytest.raises(NodeRegistryRefused, match="ERC721InvalidSender"):
        registry.register_many(clash, T0)
    assert registry.node("an-0100") is None


def test_the_given_gas_limit_covers_the_most_nodes_one_transaction_carries_with_the_longest_ids(
    registry,
):
    """Registrations are sent with a computed gas limit, not an estimate: the dearest case (the
    most nodes a transaction may carry, each with a 64-character id) fits under it, as does a
    first registration alone in a new registry."""
    n = MAX_NODES_PER_TX
    fleet = [(f"{i:03d}".ljust(64, "x"), "backhaul", i, key(f"long-{i}"), None) for i in range(n)]
    sent = registry.register_many(fleet, T0)
    assert sent.gas_used < REGISTER_GAS_BASE + REGISTER_GAS_PER_NODE * n < 2**24
    first = NodeRegistry.deploy(registry.w3).register("z" * 64, "backhaul", 1, key("z"), T0)
    assert first.gas_used < REGISTER_GAS_BASE + REGISTER_GAS_PER_NODE


def test_more_nodes_than_one_transaction_carries_are_refused_before_sending(w3, registry):
    block = w3.eth.block_number
    fleet = [
        (f"an-{i:04d}", "ground_airnode", i, key(f"an-{i:04d}"), None) for i in range(100, 151)
    ]
    with pytest.raises(ValueError, match="split them"):
        registry.register_many(fleet, T0)
    assert w3.eth.block_number == block


def test_a_registration_that_fails_on_chain_is_an_error_not_a_success(registry, monkeypatch):
    monkeypatch.setattr(node_registry, "REGISTER_GAS_PER_NODE", 10_000)  # runs out of gas
    with pytest.raises(NodeRegistryRefused, match="Reverted"):
        registry.register("an-0002", "ground_airnode", 1, key("an-0002"), T0)
    assert registry.node("an-0002") is None


def test_registration_gas_is_that_of_a_mint_with_one_key(registry):
    sent = registry.register("an-0002", "ground_airnode", 1, key("an-0002"), T0)
    assert 150_000 < sent.gas_used < 300_000


def test_the_artifact_names_the_openzeppelin_release_and_every_file_it_compiled():
    artifact = json.loads(NODE_REGISTRY_ARTIFACT.read_text())
    library = artifact["libraries"]["@openzeppelin/contracts"]
    assert library["version"] == OPENZEPPELIN_VERSION
    assert (
        f"openzeppelin-contracts@{OPENZEPPELIN_VERSION}/token/ERC721/ERC721.sol"
        in (library["sources"])
    )
    assert artifact["compiler"]["settings"]["remappings"] == [
        f"@openzeppelin/contracts/=openzeppelin-contracts@{OPENZEPPELIN_VERSION}/"
    ]
    assert "import {ERC721}" in NODE_REGISTRY_SOURCE.read_text()
