"""The chain the CLI anchors on: the in-process EVM by default, or a node over JSON-RPC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.chain import ChainConfig, connect
from proofs.anchor import AnchorRegistry


@dataclass
class ChainContext:
    kind: str
    rpc_url: str | None
    chain_id: int
    registry: AnchorRegistry

    @property
    def contract(self) -> str:
        return self.registry.address

    def anchor(self, dataset: str, tree_size: int, root: bytes, manifest_hash: bytes) -> dict:
        """Anchor one checkpoint; the driver's ``Anchorer``."""
        receipt = self.registry.anchor(dataset, tree_size, root, manifest_hash)
        return {
            "anchor_tx": receipt.tx_hash,
            "anchor_block": receipt.block_number,
            "gas_used": receipt.gas_used,
            "chain_id": self.chain_id,
            "contract": self.contract,
        }

    def lookup(self, dataset: str, tree_size: int) -> tuple[bytes, bytes] | None:
        """The verifier's ``AnchorLookup``."""
        anchor = self.registry.get(dataset, tree_size)
        return None if anchor is None else (anchor.root, anchor.manifest_hash)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "contract": self.contract,
        }


def open_chain(kind: str, rpc_url: str | None, registry_address: str | None) -> ChainContext:
    """Connect, and deploy the registry unless one is given (always, for the embedded EVM)."""
    w3 = connect(ChainConfig(kind=kind, rpc_url=rpc_url))
    if registry_address and kind != "embedded":
        registry = AnchorRegistry.at(w3, registry_address)
    else:
        registry = AnchorRegistry.deploy(w3)
    return ChainContext(kind=kind, rpc_url=rpc_url, chain_id=w3.eth.chain_id, registry=registry)
