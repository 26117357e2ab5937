"""Integration with a real EVM node: anvil from npm, started and stopped by the tests.

The same rules as on the in-process EVM, but through JSON-RPC: revert data arrives as hex from
the node, and the no-op retry must not add a block to a chain that outlives the process.
"""

from __future__ import annotations

import os

import pytest

from infra import processes
from infra.chain import (
    ANVIL_CHAIN_ID,
    AnvilProcess,
    ChainConfig,
    chain_status,
    connect,
    start_anvil,
    stop_anvil,
)
from infra.tools import free_port
from proofs.anchor import AnchorRefused, AnchorRegistry

pytestmark = pytest.mark.anvil
ROOT, MANIFEST = b"\x5a" * 32, b"\x6b" * 32


@pytest.fixture(scope="session")
def w3(anvil: AnvilProcess):
    return connect(ChainConfig("anvil", port=anvil.port))


@pytest.fixture(scope="session")
def registry(w3) -> AnchorRegistry:
    return AnchorRegistry.deploy(w3)


def test_anvil_answers_on_loopback_with_the_pinned_chain_id(anvil):
    status = chain_status(ChainConfig("anvil", anvil.rpc_url))
    assert anvil.rpc_url.startswith("http://127.0.0.1:")
    assert (status["up"], status["chain_id"]) == (True, ANVIL_CHAIN_ID)
    assert (anvil.state_dir / "anvil.pid").read_text().strip() == str(anvil.pid)


def test_anchor_and_read_back_on_a_real_node(w3, registry):
    receipt = registry.anchor("radio_kpi.v1", 42, ROOT, MANIFEST)
    assert receipt.tx_hash.startswith("0x") and receipt.created is True
    anchored = registry.get("radio_kpi.v1", 42)
    block = w3.eth.get_block(receipt.block_number)
    assert (anchored.root, anchored.manifest_hash) == (ROOT, MANIFEST)
    assert (anchored.anchored_at, anchored.block_number) == (block.timestamp, block.number)


def test_identical_retry_is_a_no_op_on_a_real_node(w3, registry):
    registry.anchor("retry", 5, ROOT, MANIFEST)
    block = w3.eth.block_number
    retry = registry.anchor("retry", 5, ROOT, MANIFEST)
    assert (retry.tx_hash, retry.created, w3.eth.block_number) == (None, False, block)


def test_conflicting_root_is_refused_by_a_real_node(registry):
    registry.anchor("conflict", 5, ROOT, MANIFEST)
    with pytest.raises(AnchorRefused) as refused:
        registry.anchor("conflict", 5, b"\x00" * 31 + b"\x01", MANIFEST)
    assert refused.value.error == "ConflictingAnchor"
    assert registry.get("conflict", 5).root == ROOT


def test_shrinking_tree_and_stranger_are_refused_by_a_real_node(w3, registry):
    registry.anchor("grow", 10, ROOT, MANIFEST)
    with pytest.raises(AnchorRefused, match="TreeSizeNotGrowing"):
        registry.anchor("grow", 9, ROOT, MANIFEST)
    stranger = AnchorRegistry.at(w3, registry.address, sender=w3.eth.accounts[1])
    with pytest.raises(AnchorRefused, match="NotOwner"):
        stranger.anchor("grow", 11, ROOT, MANIFEST)


def test_many_checkpoints_in_one_transaction_on_a_real_node(registry):
    receipt = registry.anchor_many([(f"many-{i}", 7, ROOT, MANIFEST, 0) for i in range(10)])
    assert receipt.checkpoints_created == 10
    assert registry.latest("many-9").tree_size == 7


def test_a_batch_with_one_non_growing_checkpoint_is_refused_whole_by_a_real_node(registry):
    registry.anchor("batch-grow", 20, ROOT, MANIFEST)
    with pytest.raises(AnchorRefused, match="TreeSizeNotGrowing"):
        registry.anchor_many(
            [("batch-other", 5, ROOT, MANIFEST, 0), ("batch-grow", 20 - 1, ROOT, MANIFEST, 0)]
        )
    assert registry.latest("batch-other") is None  # all or none
    assert registry.latest("batch-grow").tree_size == 20


def test_anvil_refuses_to_leave_loopback():
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        ChainConfig("anvil", "http://0.0.0.0:8545")


def test_a_stopped_node_is_gone(tmp_path):
    node = start_anvil(free_port(), tmp_path)
    assert node.stop() is True
    assert not processes.alive(node.pid)
    assert not os.path.exists(f"/proc/{node.pid}")  # exited and reaped, not a zombie
    assert not (tmp_path / "anvil.pid").exists()
    assert chain_status(ChainConfig("anvil", node.rpc_url))["up"] is False
    assert stop_anvil(tmp_path) is False  # stopping twice is harmless


def test_a_view_call_racing_a_new_block_still_reads_the_block_it_was_resolved_to(w3):
    """Workers share one anvil: one's view call resolved to block N may be served after
    another's anchor mined N+1. anvil keeps the recent states for that (bare --prune-history
    kept only the newest: "BlockOutOfRangeError", or an empty state read as a reset chain)."""
    sender, other = w3.eth.accounts[0], w3.eth.accounts[1]
    resolved = w3.eth.block_number
    before = w3.eth.get_balance(other, block_identifier=resolved)
    for _ in range(3):  # other workers' anchors
        w3.eth.send_transaction({"from": sender, "to": other, "value": 1})
    assert w3.eth.get_balance(other, block_identifier=resolved) == before
    assert w3.eth.get_balance(other) == before + 3
