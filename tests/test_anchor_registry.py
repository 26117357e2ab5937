"""AnchorRegistry on the in-process EVM: anchors are write-once, growing, owner-only."""

from __future__ import annotations

import hashlib

import pytest
from web3 import EthereumTesterProvider, Web3

from proofs.anchor import AnchorRefused, AnchorRegistry, dataset_key

ROOT_A, ROOT_B = b"\xaa" * 32, b"\xbb" * 32
MANIFEST = b"\x01" * 32


@pytest.fixture
def w3():
    return Web3(EthereumTesterProvider())


@pytest.fixture
def registry(w3):
    return AnchorRegistry.deploy(w3)


def test_dataset_key_is_sha256_of_the_dataset_id():
    assert dataset_key("radio_kpi.v1") == hashlib.sha256(b"radio_kpi.v1").digest()


def test_an_anchor_can_be_read_back_with_its_block_time(w3, registry):
    receipt = registry.anchor("radio_kpi.v1", 100, ROOT_A, MANIFEST)
    anchored = registry.get("radio_kpi.v1", 100)
    block = w3.eth.get_block(receipt.block_number)
    assert (anchored.root, anchored.manifest_hash) == (ROOT_A, MANIFEST)
    assert (anchored.anchored_at, anchored.block_number) == (block.timestamp, block.number)
    assert receipt.created == 1 and receipt.gas_used > 0


def test_an_identical_retry_sends_nothing_and_changes_nothing(w3, registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    block_before = w3.eth.block_number
    retry = registry.anchor("d", 10, ROOT_A, MANIFEST)
    assert (retry.tx_hash, retry.created, retry.gas_used) == (None, 0, 0)
    assert w3.eth.block_number == block_before


def test_the_contract_itself_treats_an_identical_retry_as_a_no_op(w3, registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    call = registry.contract.functions.anchor(dataset_key("d"), 10, ROOT_A, MANIFEST)
    assert call.call({"from": registry.sender}) is False
    call.transact({"from": registry.sender})
    assert registry.latest("d")[0] == 10


def test_a_different_root_for_an_anchored_size_is_refused(registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    with pytest.raises(AnchorRefused) as refused:
        registry.anchor("d", 10, ROOT_B, MANIFEST)
    assert refused.value.error == "ConflictingAnchor"
    assert registry.get("d", 10).root == ROOT_A


def test_a_different_manifest_for_an_anchored_size_is_refused(registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    with pytest.raises(AnchorRefused, match="ConflictingAnchor"):
        registry.anchor("d", 10, ROOT_A, b"\x02" * 32)


def test_a_tree_that_does_not_grow_is_refused(registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    with pytest.raises(AnchorRefused) as refused:
        registry.anchor("d", 7, ROOT_B, MANIFEST)
    assert refused.value.error == "TreeSizeNotGrowing"
    assert refused.value.args_by_name["latestTreeSize"] == 10


def test_datasets_grow_independently(registry):
    registry.anchor("a", 10, ROOT_A, MANIFEST)
    registry.anchor("b", 3, ROOT_B, MANIFEST)
    assert registry.latest("a")[0] == 10 and registry.latest("b")[0] == 3


def test_only_the_owner_may_anchor(w3, registry):
    stranger = AnchorRegistry(w3, registry.address, sender=w3.eth.accounts[1])
    with pytest.raises(AnchorRefused) as refused:
        stranger.anchor("d", 1, ROOT_A, MANIFEST)
    assert refused.value.error == "NotOwner"
    assert registry.get("d", 1) is None


def test_many_checkpoints_in_one_transaction_report_gas_per_checkpoint(registry):
    checkpoints = [(f"ds-{i}", 100 + i, ROOT_A, MANIFEST) for i in range(10)]
    receipt = registry.anchor_many(checkpoints)
    assert receipt.created == 10
    assert receipt.gas_per_checkpoint == receipt.gas_used / 10
    assert all(registry.get(d, n).root == ROOT_A for d, n, _, _ in checkpoints)


def test_anchor_many_applies_the_same_rules_to_each_checkpoint(registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    with pytest.raises(AnchorRefused, match="ConflictingAnchor"):
        registry.anchor_many([("e", 1, ROOT_A, MANIFEST), ("d", 10, ROOT_B, MANIFEST)])
    assert registry.get("e", 1) is None  # the whole transaction reverted


def test_nothing_anchored_reads_as_none(registry):
    assert registry.get("d", 1) is None
    assert registry.latest("d") is None


def test_at_refuses_an_address_without_a_contract(w3):
    with pytest.raises(ValueError, match="no contract at"):
        AnchorRegistry.at(w3, w3.eth.accounts[2])
