"""The chain the CLI anchors on: the in-process EVM by default, or a node over JSON-RPC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.chain import ChainConfig, connect, redacted_url
from proofs.anchor import (
    MAX_CHECKPOINTS_PER_TX,
    Anchor,
    AnchorReceipt,
    AnchorRefused,
    AnchorRegistry,
)
from proofs.node_registry import NodeRegistry
from proofs.trust import Pin, TrustRoot
from streaming.errors import SettingsError
from streaming.node_cache import NodeRegistryCache

# The pipeline's own node is read through ``proofs.rpc``'s bounds, not sticky: an answer that
# drips for over a minute or runs past 64 MiB is an outage, retried like a node that does not
# answer. web3's own timeout is per socket read: a node sending a byte every few seconds held
# the stream for good.
NODE_ANSWER_S = 60.0
NODE_ANSWER_BYTES = 64 << 20


def connect_node(kind: str, rpc_url: str | None = None) -> Any:
    """A ``Web3`` on the pipeline's chain: the embedded EVM, or a node read within bounds."""
    config = ChainConfig(kind=kind, rpc_url=rpc_url)
    if kind == "embedded":
        return connect(config)
    # Here, not at the top: it imports web3 (~0.4 s), which `rda run` imports in the thread that
    # opens the chain beside its first landing, not before its landing children are forked.
    from proofs.rpc import BoundedHTTPProvider

    bounded = BoundedHTTPProvider(
        str(config.rpc_url), NODE_ANSWER_S, NODE_ANSWER_BYTES, sticky=False
    )
    return connect(config, bounded)


class ChainChanged(SettingsError):
    """The chain is not the one the data directory's checkpoints are anchored on."""


class AnchorContention(ChainChanged):
    """The registry refused a checkpoint that does not follow its latest one.

    For a worker building on the latest checkpoint it read, that is the compare-and-swap
    losing to another worker (it reads the latest again and retries: streaming/commit.py);
    for anyone else, a chain that lost or never had the earlier anchors."""

    def __init__(self, message: str, refused: AnchorRefused) -> None:
        super().__init__(message)
        self.refused = refused


CONTENTION = ("PreviousMismatch", "ConflictingAnchor", "TreeSizeNotGrowing", "Reverted")


@dataclass
class ChainContext:
    kind: str
    rpc_url: str | None
    chain_id: int
    registry: AnchorRegistry
    # The signed publisher identity published in the registry (streaming/chain_binding.py).
    identity: bytes | None = None
    # Called with a batch's checkpoints before they are anchored: raises if the chain changed.
    before_anchor: Callable[[list[dict]], None] | None = None
    # Called with a batch's checkpoints once anchored: commits minted datasets' contribution
    # roots (streaming/assets.py).
    after_anchor: Callable[[list[dict]], None] | None = None
    # The NodeRegistry the ingest checks device signatures against, through its local cache.
    nodes: NodeRegistryCache | None = None
    # Each log's latest anchor as this context last read or anchored it, with the hash of the
    # head block at which it is known to be the latest (None: not known, its block held other
    # transactions). While the head is that block nothing can have been anchored since, and a
    # block read (~0.6 ms on py-evm) spares the view call through the EVM (~8 ms).
    _latest_seen: dict[str, tuple[bytes | None, Anchor | None]] = field(
        default_factory=dict, init=False, repr=False
    )

    @property
    def contract(self) -> str:
        return self.registry.address

    @property
    def in_process(self) -> bool:
        """Whether the chain is the in-process EVM: an anchor is mined by the call itself."""
        return self.registry.in_process

    def anchor(self, checkpoints: list[dict]) -> list[dict]:
        """Anchor a batch's checkpoints (``dataset``, ``tree_size``, ``root``, ``manifest_sha256``)
        in as few ``anchorMany`` transactions as the gas cap allows; the driver's ``Anchorer``.

        Returns, per checkpoint, its transaction, block and share of the transaction's gas
        (``gas_used``; 0 for a checkpoint already anchored identically, e.g. by a crashed run).
        Each checkpoint names the anchored size it follows (``previous_tree_size``, 0 for a
        log's first), which the registry requires to be its latest: a chain that lost earlier
        anchors refuses the batch instead of silently starting a new history.
        """
        if self.before_anchor is not None:
            self.before_anchor(checkpoints)
        results: list[dict] = []
        for start in range(0, len(checkpoints), MAX_CHECKPOINTS_PER_TX):
            results.extend(
                self._anchor_together(checkpoints[start : start + MAX_CHECKPOINTS_PER_TX])
            )
        if self.after_anchor is not None:
            self.after_anchor(checkpoints)
        return results

    def _anchor_together(self, checkpoints: list[dict]) -> list[dict]:
        wanted = [
            (
                c["dataset"],
                c["tree_size"],
                bytes.fromhex(c["root"]),
                bytes.fromhex(c["manifest_sha256"]),
                c["previous_tree_size"],
            )
            for c in checkpoints
        ]
        existing = [None if self._follows_latest(w) else self.registry.get(*w[:2]) for w in wanted]
        pending = [w for w, e in zip(wanted, existing, strict=True) if not _same(w, e)]
        try:
            receipt = self.registry.anchor_many(pending, unanchored=True) if pending else None
        except AnchorRefused as refused:
            if refused.error not in CONTENTION:
                raise
            raise AnchorContention(
                f"registry {self.contract} on chain {self.chain_id} does not hold the checkpoint "
                f"this batch follows ({refused}): the chain was reset or replaced; run "
                "`rda anchor --reanchor` to anchor the existing checkpoints on it",
                refused,
            ) from None
        if receipt is not None and receipt.checkpoints_created < len(pending):
            # The contract skipped some as identical: anchored since the latest this context
            # read (another worker finishing the same batch). Report them as found.
            existing = [
                self._anchored_before(w, e, receipt) for w, e in zip(wanted, existing, strict=True)
            ]
        created = [w for w, e in zip(wanted, existing, strict=True) if not _same(w, e)]
        if receipt is not None and created:
            self._remember_anchored(receipt, created)
        results = []
        for checkpoint, anchored in zip(wanted, existing, strict=True):
            fresh = receipt is not None and not _same(checkpoint, anchored)
            results.append(
                {
                    "anchor_tx": receipt.tx_hash if fresh else None,
                    "anchor_block": receipt.block_number if fresh else anchored.block_number,
                    "gas_used": round(receipt.gas_per_checkpoint) if fresh else 0,
                    "anchor_tx_gas": receipt.gas_used if fresh else 0,
                    "chain_id": self.chain_id,
                    "contract": self.contract,
                }
            )
        return results

    def _follows_latest(self, checkpoint: tuple) -> bool:
        """Whether the checkpoint builds on the latest anchor this context read of its log, so
        that no anchor of its size existed then (``latest`` is the largest): the view call
        that looks for an identical anchor (a redo's) is spared. The contract skips an
        identical anchor anyway, and the transaction's events say if it did."""
        dataset, tree_size, *_, previous = checkpoint
        if dataset not in self._latest_seen:
            return False
        seen = self._latest_seen[dataset][1]
        return (0 if seen is None else seen.tree_size) == previous < tree_size

    def _anchored_before(
        self, checkpoint: tuple, known: Anchor | None, receipt: AnchorReceipt
    ) -> Anchor | None:
        """The checkpoint's anchor if it was there before ``receipt``'s transaction."""
        if known is not None:
            return known
        anchored = self.registry.get(*checkpoint[:2])
        return anchored if anchored and anchored.block_number != receipt.block_number else None

    def latest(self, log: str) -> Anchor | None:
        """The log's latest anchored checkpoint on this registry, or None: a view call, unless
        the chain's head is still the block this context last read it at (or anchored it in)."""
        head = self.registry.head()
        at, anchor = self._latest_seen.get(log, (None, None))
        if at != head.hash:
            anchor = self.registry.latest(log, block=head.number)
            self._latest_seen[log] = (head.hash, anchor)
        return anchor

    def _remember_anchored(self, receipt: AnchorReceipt, fresh: list[tuple]) -> None:
        """After this context's transaction: the logs it anchored have it as their latest at its
        block, and the others what they had at the block before, when the block holds that
        transaction alone; else another one could have anchored too, and the anchors it made are
        kept as anchored, not as known to be the latest."""
        block = self.registry.block(receipt.block_number)
        alone = block.transactions == 1
        if alone:
            for log, (at, anchor) in list(self._latest_seen.items()):
                if at == block.parent_hash:  # not changed by a transaction that did not name it
                    self._latest_seen[log] = (block.hash, anchor)
        for dataset, tree_size, root, manifest_hash, _previous in fresh:
            anchor = Anchor(tree_size, root, manifest_hash, block.timestamp, block.number)
            self._latest_seen[dataset] = (block.hash if alone else None, anchor)

    def trust_root(self, data_dir: Path | None = None) -> TrustRoot:
        """A verifier's trust root pinned to the identity this chain context published (for the
        publisher's own checks, e.g. the demo's; auditors pin the identity themselves). Given
        ``data_dir``, its identity is published first if it is not yet."""
        if self.identity is None and data_dir is not None:
            from sinks.layout import DataLayout
            from streaming.chain_binding import publish_identity

            publish_identity(self, DataLayout(data_dir))
        if self.identity is None:
            raise ValueError("no publisher identity published on this chain yet")
        return TrustRoot(Pin(identity=self.identity), self.registry.w3)

    def use_node_registry(self, address: str | None) -> None:
        """Check device signatures against the NodeRegistry at ``address`` on this chain."""
        if address is None:
            self.nodes = None
            return
        try:
            registry = NodeRegistry.at(self.registry.w3, address)
        except ValueError as error:
            raise SettingsError(f"--node-registry: {error}") from None
        self.nodes = NodeRegistryCache(registry)

    def describe(self) -> dict[str, Any]:
        described = {
            "kind": self.kind,
            "rpc_url": redacted_url(self.rpc_url) if self.rpc_url else None,
            "chain_id": self.chain_id,
            "contract": self.contract,
        }
        if self.nodes is not None:
            described["node_registry"] = self.nodes.address
        return described


def _same(checkpoint: tuple, anchored: Anchor | None) -> bool:
    return anchored is not None and (anchored.root, anchored.manifest_hash) == checkpoint[2:4]


def open_chain(
    kind: str,
    rpc_url: str | None,
    registry_address: str | None,
    node_registry: str | None = None,
) -> ChainContext:
    """Connect, and deploy the registry unless one is given (always, for the embedded EVM);
    ``node_registry``: the NodeRegistry device signatures are checked against, if any."""
    w3 = connect_node(kind, rpc_url)
    if registry_address and kind != "embedded":
        try:
            registry = AnchorRegistry.at(w3, registry_address)
        except ValueError as error:  # no code there (any more), or not an address
            raise ChainChanged(
                f"{error}: the chain at {redacted_url(rpc_url)} was reset, or is not the one "
                "meant; point --rpc-url/--registry at the registry, or run `rda anchor --reanchor` "
                "to anchor the data directory's checkpoints in a new one"
            ) from None
    else:
        registry = AnchorRegistry.deploy(w3)
    context = ChainContext(kind=kind, rpc_url=rpc_url, chain_id=w3.eth.chain_id, registry=registry)
    context.use_node_registry(node_registry)
    return context
