"""ChainContext.latest: the registry's latest anchor, read again only when the chain moved."""

from __future__ import annotations

import pytest
from web3 import EthereumTesterProvider, Web3

from proofs.anchor import AnchorRegistry
from streaming.chain import ChainContext

ROOT, MANIFEST = "aa" * 32, "01" * 32


@pytest.fixture
def registry() -> AnchorRegistry:
    return AnchorRegistry.deploy(Web3(EthereumTesterProvider()))


def context(registry: AnchorRegistry) -> ChainContext:
    return ChainContext("embedded", None, registry.w3.eth.chain_id, registry)


def checkpoint(dataset: str, size: int, previous: int, root: str = ROOT) -> dict:
    return {
        "dataset": dataset,
        "tree_size": size,
        "root": root,
        "manifest_sha256": MANIFEST,
        "previous_tree_size": previous,
    }


class CountingReads:
    """The registry's view call ``latest``, counted (the block reads are not)."""

    def __init__(self, registry: AnchorRegistry) -> None:
        self.calls = 0
        self._latest = registry.latest
        registry.latest = self  # type: ignore[method-assign]

    def __call__(self, dataset: str, block: int | str = "latest"):
        self.calls += 1
        return self._latest(dataset, block)


def test_after_an_anchor_latest_is_what_the_contract_says(registry):
    chain = context(registry)
    chain.anchor([checkpoint("d.v1", 10, 0), checkpoint("e.v1", 4, 0)])
    for dataset in ("d.v1", "e.v1"):
        assert chain.latest(dataset) == registry.latest(dataset)


def test_a_chain_whose_head_stands_still_is_asked_once_per_log(registry):
    chain = context(registry)
    reads = CountingReads(registry)
    assert chain.latest("d.v1") is None and chain.latest("d.v1") is None
    assert reads.calls == 1
    chain.anchor([checkpoint("d.v1", 10, 0)])
    assert chain.latest("d.v1").tree_size == 10
    assert reads.calls == 1  # the context anchored it, alone in its block


def test_an_anchor_by_another_worker_is_seen_at_once(registry):
    mine, theirs = context(registry), context(registry)
    mine.anchor([checkpoint("d.v1", 10, 0)])
    assert mine.latest("d.v1").tree_size == 10
    theirs.anchor([checkpoint("d.v1", 25, 10, root="bb" * 32)])
    seen = mine.latest("d.v1")
    assert (seen.tree_size, seen.root) == (25, bytes.fromhex("bb" * 32))
    assert seen == registry.latest("d.v1")


def test_any_new_block_makes_the_context_read_again(registry):
    chain = context(registry)
    chain.anchor([checkpoint("d.v1", 10, 0)])
    reads = CountingReads(registry)
    w3 = registry.w3
    w3.eth.send_transaction({"from": w3.eth.accounts[1], "to": w3.eth.accounts[2], "value": 1})
    assert chain.latest("d.v1").tree_size == 10
    assert reads.calls == 1


def test_a_log_the_context_s_transaction_did_not_name_is_not_read_again(registry):
    chain = context(registry)
    chain.anchor([checkpoint("d.v1", 10, 0), checkpoint("e.v1", 4, 0)])
    e_before = registry.latest("e.v1")
    reads = CountingReads(registry)
    chain.anchor([checkpoint("d.v1", 12, 10)])  # e.v1 is not in this block's transaction
    assert chain.latest("e.v1") == e_before
    assert chain.latest("d.v1").tree_size == 12
    assert reads.calls == 0
