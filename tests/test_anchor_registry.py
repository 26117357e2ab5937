"""AnchorRegistry on the in-process EVM: anchors are write-once, growing, owner-only."""

from __future__ import annotations

import hashlib

import pytest
from web3 import EthereumTesterProvider, Web3

from proofs.anchor import (
    ANCHOR_GAS_BASE,
    ANCHOR_GAS_PER_CHECKPOINT,
    MAX_CHECKPOINTS_PER_TX,
    AnchorRefused,
    AnchorRegistry,
    dataset_key,
)

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
    assert receipt.created is True and receipt.gas_used > 0
    assert receipt.tx_hash.startswith("0x") and len(receipt.tx_hash) == 66


def test_an_identical_retry_sends_nothing_and_changes_nothing(w3, registry):
    first = registry.anchor("d", 10, ROOT_A, MANIFEST)
    before = (w3.eth.block_number, registry.get("d", 10), registry.latest("d"))
    retry = registry.anchor("d", 10, ROOT_A, MANIFEST)
    assert (retry.tx_hash, retry.created, retry.gas_used) == (None, False, 0)
    assert retry.block_number == first.block_number
    assert (w3.eth.block_number, registry.get("d", 10), registry.latest("d")) == before


def test_the_contract_itself_treats_an_identical_retry_as_a_no_op(w3, registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    call = registry.contract.functions.anchor(dataset_key("d"), 10, ROOT_A, MANIFEST, 0)
    assert call.call({"from": registry.sender}) is False
    call.transact({"from": registry.sender})
    assert registry.latest("d").tree_size == 10


def test_the_in_process_chain_sends_at_once_and_reads_a_revert_reason_after_the_fact(w3, registry):
    """No dry run where gas is free: a refused anchorMany is a mined, reverted transaction
    (one block, no anchor), and its reason is read by running the call again."""
    registry.anchor_many([("d", 10, ROOT_A, MANIFEST, 0)])
    block = w3.eth.block_number
    with pytest.raises(AnchorRefused) as refused:
        registry.anchor_many([("d", 12, ROOT_B, MANIFEST, 9)], unanchored=True)
    assert refused.value.error == "PreviousMismatch"
    assert w3.eth.block_number == block + 1
    assert w3.eth.get_transaction_receipt(w3.eth.get_block(block + 1).transactions[0]).status == 0
    assert (registry.get("d", 12), registry.latest("d").tree_size) == (None, 10)


def test_a_checkpoint_the_contract_skips_as_identical_is_not_counted_as_created(registry):
    registry.anchor_many([("d", 10, ROOT_A, MANIFEST, 0)])
    again = registry.anchor_many(
        [("d", 10, ROOT_A, MANIFEST, 0), ("e", 5, ROOT_B, MANIFEST, 0)], unanchored=True
    )
    assert (again.created, again.checkpoints_created) == (True, 1)


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
    assert registry.get("d", 7) is None


def test_an_equal_size_with_a_new_root_is_a_conflict_not_growth(registry):
    # The latest size is always anchored, so "not larger" with new content at that size is the
    # conflict; TreeSizeNotGrowing is for a smaller size that was never anchored.
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    with pytest.raises(AnchorRefused, match="ConflictingAnchor"):
        registry.anchor("d", 10, ROOT_B, b"\x02" * 32)


def test_datasets_grow_independently(registry):
    registry.anchor("a", 10, ROOT_A, MANIFEST)
    registry.anchor("b", 3, ROOT_B, MANIFEST)
    assert (registry.latest("a").tree_size, registry.latest("b").tree_size) == (10, 3)


def test_latest_is_the_largest_anchored_checkpoint(registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    registry.anchor("d", 25, ROOT_B, MANIFEST, previous=10)
    latest = registry.latest("d")
    assert (latest.tree_size, latest.root) == (25, ROOT_B)
    assert latest == registry.get("d", 25)


def test_only_the_owner_may_anchor(w3, registry):
    stranger = AnchorRegistry(w3, registry.address, sender=w3.eth.accounts[1])
    with pytest.raises(AnchorRefused) as refused:
        stranger.anchor("d", 1, ROOT_A, MANIFEST)
    assert refused.value.error == "NotOwner"
    assert registry.get("d", 1) is None


def test_many_checkpoints_in_one_transaction_report_gas_per_checkpoint(registry):
    checkpoints = [(f"ds-{i}", 100 + i, ROOT_A, MANIFEST, 0) for i in range(10)]
    receipt = registry.anchor_many(checkpoints)
    assert (receipt.created, receipt.checkpoints_created) == (True, 10)
    assert receipt.gas_per_checkpoint == receipt.gas_used / 10
    assert all(registry.get(d, n).block_number == receipt.block_number for d, n, *_ in checkpoints)
    single = registry.anchor_many([("alone", 1, ROOT_B, MANIFEST, 0)])
    assert single.gas_per_checkpoint > receipt.gas_per_checkpoint  # batching amortizes the tx


def test_the_given_gas_limit_covers_the_largest_transaction_of_new_checkpoints(registry):
    """anchorMany is sent with a computed gas limit, not an estimate: the most checkpoints one
    transaction may carry, each the first of its dataset (the dearest case), fit under it."""
    n = MAX_CHECKPOINTS_PER_TX
    receipt = registry.anchor_many([(f"big-{i}", 7 + i, ROOT_A, MANIFEST, 0) for i in range(n)])
    assert receipt.checkpoints_created == n
    assert receipt.gas_used < ANCHOR_GAS_BASE + ANCHOR_GAS_PER_CHECKPOINT * n < 2**24
    single = registry.anchor_many([("first-of-its-kind", 1, ROOT_B, MANIFEST, 0)])
    assert single.gas_used < ANCHOR_GAS_BASE + ANCHOR_GAS_PER_CHECKPOINT


def test_anchor_many_retry_sends_only_what_is_new(w3, registry):
    registry.anchor_many([("a", 1, ROOT_A, MANIFEST, 0), ("b", 1, ROOT_A, MANIFEST, 0)])
    block = w3.eth.block_number
    retry = registry.anchor_many([("a", 1, ROOT_A, MANIFEST, 0), ("b", 1, ROOT_A, MANIFEST, 0)])
    assert (retry.tx_hash, retry.created, w3.eth.block_number) == (None, False, block)
    grown = registry.anchor_many([("a", 1, ROOT_A, MANIFEST, 0), ("b", 2, ROOT_B, MANIFEST, 1)])
    assert grown.checkpoints_created == 1 and registry.latest("b").tree_size == 2
    assert registry.anchor_many([]).tx_hash is None


def test_anchor_many_refuses_more_than_one_transaction_can_carry(registry):
    too_many = [(f"d{i}", 1, ROOT_A, MANIFEST, 0) for i in range(MAX_CHECKPOINTS_PER_TX + 1)]
    with pytest.raises(ValueError, match="split them"):
        registry.anchor_many(too_many)


def test_anchor_many_refuses_a_tree_that_shrinks_within_the_batch(registry):
    with pytest.raises(AnchorRefused, match="TreeSizeNotGrowing"):
        registry.anchor_many([("d", 5, ROOT_A, MANIFEST, 0), ("d", 4, ROOT_B, MANIFEST, 0)])
    assert registry.latest("d") is None


def test_the_contract_refuses_arrays_of_different_lengths(registry):
    call = registry.contract.functions.anchorMany(
        [dataset_key("d")], [1, 2], [ROOT_A], [MANIFEST], [0]
    )
    with pytest.raises(AnchorRefused, match="LengthMismatch"):
        registry._send(call, checkpoints=1)


@pytest.mark.parametrize(
    ("size", "root", "manifest"),
    [
        (0, ROOT_A, MANIFEST),
        (2**64, ROOT_A, MANIFEST),
        (1, b"\xaa" * 31, MANIFEST),
        (1, b"\x00" * 32, MANIFEST),
        (1, ROOT_A, "0x01"),
        ("1", ROOT_A, MANIFEST),
    ],
)
def test_malformed_checkpoints_are_refused_before_anything_is_sent(
    w3, registry, size, root, manifest
):
    block = w3.eth.block_number
    with pytest.raises(ValueError):
        registry.anchor("d", size, root, manifest)
    assert w3.eth.block_number == block


def test_anchor_many_applies_the_same_rules_to_each_checkpoint(registry):
    registry.anchor("d", 10, ROOT_A, MANIFEST)
    with pytest.raises(AnchorRefused, match="ConflictingAnchor"):
        registry.anchor_many([("e", 1, ROOT_A, MANIFEST, 0), ("d", 10, ROOT_B, MANIFEST, 0)])
    assert registry.get("e", 1) is None  # the whole transaction reverted


def test_nothing_anchored_reads_as_none(registry):
    assert registry.get("d", 1) is None
    assert registry.latest("d") is None


def test_at_refuses_an_address_without_a_contract(w3):
    with pytest.raises(ValueError, match="no contract at"):
        AnchorRegistry.at(w3, w3.eth.accounts[2])
