"""The DataAsset contract (ERC-721, one token per dataset): the web3 edge of ``proofs``.

An auditor reads from it what a node owner's claim is checked against: which registry and
dataset a token stands for, and the contribution root and node-row total committed for each
checkpoint, each bound on chain to the manifest hash anchored for that checkpoint. The
publisher mints (``mint``) and commits later checkpoints' tables (``commit_contributions``).
Contract calls go through ``Contract``, shared with the marketplace's licence client: one view
call first, so a revert comes back as ``ContractRefused`` naming the Solidity error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from proofs.anchor import (
    DeployedContract,
    checksum_address,
    dataset_key,
    deploy_receipt,
    gas_given,
)
from proofs.anchor_errors import AnchorRefused, refusal

ContractRefused = AnchorRefused  # a revert with a custom error: ``error`` is its name
ARTIFACT = Path(__file__).parent / "contracts" / "DataAsset.json"
ZERO = b"\x00" * 32


@cache
def load_artifact(path: Path, name: str | None = None) -> dict[str, Any]:
    """A committed artifact; ``name`` picks one from a file holding several."""
    artifact = json.loads(path.read_text())
    return artifact[name] if name else artifact


@dataclass(frozen=True)
class Sent:
    """A mined transaction: its hash, block and gas, and what the call returned."""

    tx_hash: str
    block_number: int
    gas_used: int
    value: Any
    logs: tuple[Any, ...] = ()


class Contract(DeployedContract):
    """A deployed contract from a committed artifact, sending from ``sender`` (the node's first
    account unless given, asked for only when something is sent: a reader's node, a public
    one, has none)."""

    artifact_path: Path = ARTIFACT
    artifact_name: str | None = None

    def __init__(self, w3: Any, address: str, sender: str | None = None) -> None:
        artifact = load_artifact(self.artifact_path, self.artifact_name)
        super().__init__(w3, address, artifact, sender)

    @classmethod
    def deploy(cls, w3: Any, *args: Any, sender: str | None = None) -> Any:
        artifact = load_artifact(cls.artifact_path, cls.artifact_name)
        sender = sender or w3.eth.accounts[0]
        receipt = deploy_receipt(w3, artifact, sender, *args)
        deployed = cls(w3, receipt["contractAddress"], sender)
        deployed.deploy_gas = int(receipt["gasUsed"])
        return deployed

    @classmethod
    def at(cls, w3: Any, address: str, sender: str | None = None) -> Any:
        address = checksum_address(address)
        if not w3.eth.get_code(address):
            raise ValueError(f"no contract at {address} on chain {w3.eth.chain_id}")
        return cls(w3, address, sender)

    def as_sender(self, sender: str) -> Any:
        return type(self)(self.w3, self.address, sender)

    def view(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self.contract.functions, name)(*args).call()
        except Exception as error:
            raise refusal(error, self._errors) from error

    def send(self, name: str, *args: Any, value: int = 0) -> Sent:
        """Send ``name(*args)``; its return value comes from a call made just before."""
        call = getattr(self.contract.functions, name)(*args)
        tx = {"from": self.sender, "value": value}
        try:
            returned = call.call(tx)  # surfaces a revert with its error, before any gas is spent
            tx_hash = call.transact({**tx, **gas_given(self.w3)})
        except Exception as error:
            raise refusal(error, self._errors) from error
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise ContractRefused("Reverted", {"tx": bytes(receipt["transactionHash"]).hex()})
        return Sent(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x"),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            value=returned,
            logs=tuple(receipt["logs"]),
        )


@dataclass(frozen=True)
class AssetInfo:
    token_id: int
    registry: str
    dataset_id: bytes
    manifest_hash: bytes
    terms_hash: bytes
    node_share_bps: int
    latest_tree_size: int
    owner: str


@dataclass(frozen=True)
class CommittedCheckpoint:
    tree_size: int
    contribution_root: bytes
    node_rows: int
    manifest_hash: bytes
    committed_at: int


class DataAsset(Contract):
    """The DataAsset contract."""

    artifact_path = ARTIFACT

    def mint(
        self,
        registry: str,
        dataset: str,
        tree_size: int,
        terms_hash: bytes,
        node_share_bps: int,
        contribution_root: bytes,
        node_rows: int,
    ) -> Sent:
        return self.send(
            "mint",
            checksum_address(registry),
            dataset_key(dataset),
            tree_size,
            terms_hash,
            node_share_bps,
            contribution_root,
            node_rows,
        )

    def commit_contributions(self, entries: list[tuple[int, int, bytes, int]]) -> Sent:
        """(token id, tree size, contribution root, node rows) each, in one transaction."""
        columns = [list(c) for c in zip(*entries, strict=True)]
        return self.send("commitContributions", *columns)

    def asset_of(self, registry: str, dataset: str) -> int | None:
        token = self.view("assetOf", checksum_address(registry), dataset_key(dataset))
        return int(token) or None

    def info(self, token_id: int) -> AssetInfo:
        registry, dataset_id, manifest, terms, bps, latest, owner = self.view("assetInfo", token_id)
        return AssetInfo(
            token_id, registry, bytes(dataset_id), bytes(manifest), bytes(terms), bps, latest, owner
        )

    def checkpoint(self, token_id: int, tree_size: int) -> CommittedCheckpoint | None:
        root, rows, manifest, at = self.view("checkpointInfo", token_id, tree_size)
        if not at:
            return None
        return CommittedCheckpoint(tree_size, bytes(root), int(rows), bytes(manifest), int(at))
