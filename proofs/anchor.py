"""Anchoring checkpoints in the AnchorRegistry contract (the web3 edge of ``proofs``).

Reads use view calls (``getAnchor``, ``latest``), never a scan of event logs, so they stay fast
however long the chain grows. The contract's custom errors come back as ``AnchorRefused`` naming
the error, e.g. ``ConflictingAnchor`` or ``TreeSizeNotGrowing``.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACT = Path(__file__).parent / "contracts" / "AnchorRegistry.json"
ZERO = b"\x00" * 32


class AnchorRefused(RuntimeError):
    """The contract refused an anchor; ``error`` is the Solidity custom error's name."""

    def __init__(self, error: str, args: dict[str, Any]) -> None:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"{error}({shown})")
        self.error = error
        self.args_by_name = args


@dataclass(frozen=True)
class Anchor:
    root: bytes
    manifest_hash: bytes
    anchored_at: int  # block timestamp, unix seconds
    block_number: int


@dataclass(frozen=True)
class AnchorReceipt:
    tx_hash: str | None  # None when nothing was sent (the anchor already existed)
    block_number: int | None
    gas_used: int
    created: int  # checkpoints newly anchored by this call
    gas_per_checkpoint: float = 0.0


def dataset_key(dataset: str) -> bytes:
    """The on-chain dataset id: SHA-256 of the UTF-8 dataset name."""
    return hashlib.sha256(dataset.encode("utf-8")).digest()


@cache
def load_artifact() -> dict[str, Any]:
    return json.loads(ARTIFACT.read_text())


class AnchorRegistry:
    """A deployed AnchorRegistry, used from the owner's (first) account by default."""

    def __init__(self, w3: Any, address: str, sender: str | None = None) -> None:
        artifact = load_artifact()
        self.w3 = w3
        self.address = address
        self.sender = sender or w3.eth.accounts[0]
        self.contract = w3.eth.contract(address=address, abi=artifact["abi"])
        self._errors = _error_selectors(artifact["abi"])

    @classmethod
    def deploy(cls, w3: Any, sender: str | None = None) -> AnchorRegistry:
        artifact = load_artifact()
        sender = sender or w3.eth.accounts[0]
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx = factory.constructor().transact({"from": sender})
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        return cls(w3, receipt["contractAddress"], sender)

    @classmethod
    def at(cls, w3: Any, address: str, sender: str | None = None) -> AnchorRegistry:
        if not w3.eth.get_code(address):
            raise ValueError(f"no contract at {address} on chain {w3.eth.chain_id}")
        return cls(w3, w3.to_checksum_address(address), sender)

    def anchor(
        self, dataset: str, tree_size: int, root: bytes, manifest_hash: bytes
    ) -> AnchorReceipt:
        """Anchor one checkpoint; an identical existing anchor sends no transaction."""
        existing = self.get(dataset, tree_size)
        if existing is not None and (existing.root, existing.manifest_hash) == (
            root,
            manifest_hash,
        ):
            return AnchorReceipt(None, existing.block_number, 0, 0)
        call = self.contract.functions.anchor(dataset_key(dataset), tree_size, root, manifest_hash)
        return self._send(call, checkpoints=1)

    def anchor_many(self, checkpoints: list[tuple[str, int, bytes, bytes]]) -> AnchorReceipt:
        """Anchor several checkpoints in one transaction."""
        columns = list(zip(*checkpoints, strict=True)) if checkpoints else [(), (), (), ()]
        datasets, sizes, roots, hashes = columns
        call = self.contract.functions.anchorMany(
            [dataset_key(d) for d in datasets], list(sizes), list(roots), list(hashes)
        )
        return self._send(call, checkpoints=len(checkpoints))

    def get(self, dataset: str, tree_size: int) -> Anchor | None:
        root, manifest_hash, at, block = self.contract.functions.getAnchor(
            dataset_key(dataset), tree_size
        ).call()
        return None if root == ZERO else Anchor(root, manifest_hash, at, block)

    def latest(self, dataset: str) -> tuple[int, Anchor] | None:
        size, root, manifest_hash, at, block = self.contract.functions.latest(
            dataset_key(dataset)
        ).call()
        return None if root == ZERO else (size, Anchor(root, manifest_hash, at, block))

    def _send(self, call: Any, checkpoints: int) -> AnchorReceipt:
        try:
            created = call.call({"from": self.sender})  # surfaces a revert with its reason
            tx = call.transact({"from": self.sender})
        except Exception as error:  # web3 raises several types; decode the custom error if any
            raise self._refusal(error) from error
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        gas = int(receipt["gasUsed"])
        return AnchorReceipt(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x"),
            block_number=int(receipt["blockNumber"]),
            gas_used=gas,
            created=int(created),
            gas_per_checkpoint=gas / checkpoints if checkpoints else 0.0,
        )

    def _refusal(self, error: Exception) -> Exception:
        data = _revert_data(error)
        if data is None or data[:4] not in self._errors:
            return error
        name, types, names = self._errors[data[:4]]
        from eth_abi import decode

        values = decode(types, data[4:])
        return AnchorRefused(name, dict(zip(names, values, strict=True)))


def _error_selectors(abi: list[dict]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    from eth_utils import keccak

    selectors = {}
    for item in abi:
        if item["type"] == "error":
            types = [i["type"] for i in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            selectors[keccak(text=signature)[:4]] = (
                item["name"],
                types,
                [i["name"] for i in item["inputs"]],
            )
    return selectors


def _revert_data(error: Exception) -> bytes | None:
    """The ABI-encoded revert data carried by a web3 exception, whatever its shape."""
    for candidate in (getattr(error, "data", None), *getattr(error, "args", ())):
        if isinstance(candidate, dict):
            candidate = candidate.get("data")
        if isinstance(candidate, bytes) and len(candidate) >= 4:
            return candidate
        if isinstance(candidate, str):
            decoded = _revert_bytes_from_text(candidate)
            if decoded is not None:
                return decoded
    return None


def _revert_bytes_from_text(text: str) -> bytes | None:
    """Hex revert data (JSON-RPC nodes) or a bytes literal in the message (eth-tester)."""
    if text.startswith("0x") and len(text) >= 10:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return None
    marker = "execution reverted: b"
    if marker in text:
        try:
            value = ast.literal_eval(text[text.index(marker) + len(marker) - 1 :])
        except (SyntaxError, ValueError):
            return None
        return value if isinstance(value, bytes) and len(value) >= 4 else None
    return None


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)
