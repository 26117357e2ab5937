"""Anchoring checkpoints in the AnchorRegistry contract (the web3 edge of ``proofs``).

Reads use view calls (``getAnchor``, ``latest``), never a scan of event logs, so they stay fast
however long the chain grows. The contract's custom errors come back as ``AnchorRefused`` naming
the error, e.g. ``ConflictingAnchor`` or ``TreeSizeNotGrowing``.

On chain a dataset is keyed by ``datasetId = SHA-256(UTF-8 bytes of the dataset name)``
(``dataset_key``): a fixed-size key that anyone can recompute from the name alone, with no
registry of names to trust. The ABI and bytecode come from the committed, reproducibly compiled
artifact ``contracts/AnchorRegistry.json`` (see ``infra.solc``), never from a compiler at run time.
"""

from __future__ import annotations

import ast
import hashlib
import json
import operator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACT = Path(__file__).parent / "contracts" / "AnchorRegistry.json"
ZERO = b"\x00" * 32
# ~94k gas per new checkpoint: 100 stay under EIP-7825's per-transaction cap (2**24 gas, in force
# on Ethereum since Osaka) and well under the 30M block gas limit of both local chains.
MAX_CHECKPOINTS_PER_TX = 100


class AnchorRefused(RuntimeError):
    """The contract refused an anchor; ``error`` is the Solidity custom error's name."""

    def __init__(self, error: str, args: dict[str, Any]) -> None:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"{error}({shown})")
        self.error = error
        self.args_by_name = args


@dataclass(frozen=True)
class Anchor:
    """One anchored checkpoint as the contract stores it."""

    tree_size: int
    root: bytes
    manifest_hash: bytes
    anchored_at: int  # block timestamp, unix seconds
    block_number: int


@dataclass(frozen=True)
class AnchorReceipt:
    """What one ``anchor``/``anchor_many`` call did.

    ``created`` is False for an idempotent retry: every checkpoint was already anchored
    identically, so nothing was sent (``tx_hash`` None, ``gas_used`` 0, ``block_number`` the
    block of the existing anchor when there is exactly one). ``gas_per_checkpoint`` divides the
    transaction's gas by the checkpoints it carried, the figure that batching improves.
    """

    tx_hash: str | None
    block_number: int | None
    gas_used: int
    created: bool
    checkpoints_created: int = 0
    gas_per_checkpoint: float = 0.0


Checkpoint = tuple[str, int, bytes, bytes]  # (dataset, tree size, root, manifest hash)


def dataset_key(dataset: str) -> bytes:
    """The on-chain dataset id: SHA-256 of the UTF-8 dataset name."""
    return hashlib.sha256(dataset.encode("utf-8")).digest()


@cache
def load_artifact() -> dict[str, Any]:
    """The committed artifact; what is deployed is exactly what the recompile test checks."""
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
        """Deploy a new registry owned by ``sender`` (default: the node's first account)."""
        artifact = load_artifact()
        sender = sender or w3.eth.accounts[0]
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx = factory.constructor().transact({"from": sender})
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        return cls(w3, receipt["contractAddress"], sender)

    @classmethod
    def at(cls, w3: Any, address: str, sender: str | None = None) -> AnchorRegistry:
        """An existing registry; refuses an address without code rather than fail later."""
        if not w3.eth.get_code(address):
            raise ValueError(f"no contract at {address} on chain {w3.eth.chain_id}")
        return cls(w3, w3.to_checksum_address(address), sender)

    def anchor(
        self, dataset: str, tree_size: int, root: bytes, manifest_hash: bytes
    ) -> AnchorReceipt:
        """Anchor one checkpoint.

        An identical existing anchor is found with a view call first and no transaction is
        sent, so a retried batch costs no gas and adds no block.
        """
        checkpoint = _checked((dataset, tree_size, root, manifest_hash))
        existing = self._existing(checkpoint)
        if existing is not None:
            return AnchorReceipt(None, existing.block_number, 0, created=False)
        call = self.contract.functions.anchor(dataset_key(dataset), *checkpoint[1:])
        return self._send(call, checkpoints=1)

    def anchor_many(self, checkpoints: list[Checkpoint]) -> AnchorReceipt:
        """Anchor several checkpoints in one transaction (all or none, same rules as anchor).

        Checkpoints already anchored identically are left out; when none is left nothing is
        sent. A conflict or a shrinking tree anywhere reverts the whole transaction. At most
        ``MAX_CHECKPOINTS_PER_TX`` may be sent at once; split larger lists.
        """
        if len(checkpoints) > MAX_CHECKPOINTS_PER_TX:
            raise ValueError(
                f"{len(checkpoints)} checkpoints in one transaction; the limit is "
                f"{MAX_CHECKPOINTS_PER_TX} (gas per transaction), split them"
            )
        pending = []
        for checkpoint in map(_checked, checkpoints):
            if self._existing(checkpoint) is None:
                pending.append(checkpoint)
        if not pending:
            return AnchorReceipt(None, None, 0, created=False)
        datasets, sizes, roots, hashes = zip(*pending, strict=True)
        call = self.contract.functions.anchorMany(
            [dataset_key(d) for d in datasets], list(sizes), list(roots), list(hashes)
        )
        return self._send(call, checkpoints=len(pending))

    def get(self, dataset: str, tree_size: int) -> Anchor | None:
        """The anchor of ``dataset`` at ``tree_size``, or None (a view call, no log scan)."""
        root, manifest_hash, at, block = self.contract.functions.getAnchor(
            dataset_key(dataset), tree_size
        ).call()
        return None if root == ZERO else Anchor(tree_size, root, manifest_hash, at, block)

    def latest(self, dataset: str) -> Anchor | None:
        """The dataset's largest anchored checkpoint, or None if it has none."""
        size, root, manifest_hash, at, block = self.contract.functions.latest(
            dataset_key(dataset)
        ).call()
        return None if root == ZERO else Anchor(size, root, manifest_hash, at, block)

    def _existing(self, checkpoint: Checkpoint) -> Anchor | None:
        """The identical anchor already on chain, if any (a differing one: the contract refuses)."""
        dataset, tree_size, root, manifest_hash = checkpoint
        anchor = self.get(dataset, tree_size)
        if anchor is not None and (anchor.root, anchor.manifest_hash) == (root, manifest_hash):
            return anchor
        return None

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
            created=bool(created),
            checkpoints_created=int(created),
            gas_per_checkpoint=gas / checkpoints,
        )

    def _refusal(self, error: Exception) -> Exception:
        data = _revert_data(error)
        if data is None or data[:4] not in self._errors:
            return error
        name, types, names = self._errors[data[:4]]
        from eth_abi import decode

        values = decode(types, data[4:])
        return AnchorRefused(name, dict(zip(names, values, strict=True)))


def _checked(checkpoint: Checkpoint) -> Checkpoint:
    """Refuse malformed input here with a clear message, not as an ABI encoding error."""
    dataset, tree_size, root, manifest_hash = checkpoint
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a non-empty string, not {dataset!r}")
    try:
        if isinstance(tree_size, bool):
            raise TypeError
        tree_size = operator.index(tree_size)  # numpy and Arrow integers too
    except TypeError:
        raise ValueError(f"tree size must be an integer, not {tree_size!r}") from None
    if not 0 < tree_size < 2**64:
        raise ValueError(f"tree size must be in 1..2**64-1, not {tree_size}")
    for name, value in (("root", root), ("manifest hash", manifest_hash)):
        if not isinstance(value, bytes) or len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes, not {value!r}")
    if root == ZERO:
        raise ValueError("root must not be all zero (the contract reads it as 'no anchor')")
    return dataset, tree_size, root, manifest_hash


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
