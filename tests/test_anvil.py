"""Integration with a real EVM node: anvil from npm, started and stopped by the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra import processes
from infra.chain import AnvilProcess, ChainConfig, chain_status, connect, start_anvil
from infra.tools import free_port
from proofs.anchor import AnchorRefused, AnchorRegistry

pytestmark = pytest.mark.anvil
ROOT, MANIFEST = b"\x5a" * 32, b"\x6b" * 32


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilProcess]:
    node = start_anvil(free_port(), tmp_path_factory.mktemp("anvil"))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def registry(anvil):
    return AnchorRegistry.deploy(connect(ChainConfig("anvil", anvil.rpc_url)))


def test_anvil_answers_on_loopback_with_the_pinned_chain_id(anvil):
    status = chain_status(ChainConfig("anvil", anvil.rpc_url))
    assert anvil.rpc_url.startswith("http://127.0.0.1:")
    assert (status["up"], status["chain_id"]) == (True, 31337)


def test_anchor_and_read_back_on_a_real_node(registry):
    receipt = registry.anchor("radio_kpi.v1", 42, ROOT, MANIFEST)
    assert receipt.tx_hash.startswith("0x") and receipt.created == 1
    assert registry.get("radio_kpi.v1", 42).root == ROOT


def test_identical_retry_is_a_no_op_on_a_real_node(registry):
    registry.anchor("retry", 5, ROOT, MANIFEST)
    assert registry.anchor("retry", 5, ROOT, MANIFEST).tx_hash is None


def test_conflicting_root_is_refused_by_a_real_node(registry):
    registry.anchor("conflict", 5, ROOT, MANIFEST)
    with pytest.raises(AnchorRefused, match="ConflictingAnchor"):
        registry.anchor("conflict", 5, b"\x00" * 31 + b"\x01", MANIFEST)


def test_a_stopped_node_is_gone(tmp_path):
    node = start_anvil(free_port(), tmp_path)
    assert node.stop() is True
    assert not processes.alive(node.pid)
    assert chain_status(ChainConfig("anvil", node.rpc_url))["up"] is False
