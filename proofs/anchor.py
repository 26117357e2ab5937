"""Anchoring checkpoints in the AnchorRegistry contract (the web3 edge of ``proofs``).

Reads use view calls (``getAnchor``, ``latest``, ``previousTreeSize``, ``identityHash``…),
never a scan of event logs, so they stay fast however long the chain grows. The contract's
custom errors come back as ``AnchorRefused`` naming the error, e.g. ``ConflictingAnchor``,
``TreeSizeNotGrowing`` or ``PreviousMismatch`` (``proofs.anchor_errors``).

On chain a log is keyed by ``datasetId = SHA-256(UTF-8 bytes of the log id)`` (``dataset_key``):
a fixed-size key that anyone can recompute from the name alone, with no registry of names to
trust. The ABI and bytecode come from the committed, reproducibly compiled artifact
``contracts/AnchorRegistry.json`` (see ``infra.solc``), never from a compiler at run time.

Version 2 of the contract (this artifact) adds the publisher identity document and the link from
each anchor to the one before it. A version-1 registry (deployed before) is still readable:
``getAnchor`` and ``latest`` have not changed; ``version`` says 1 and the version-2 reads return
None.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from proofs.anchor_errors import (
    AnchorRefused,
    ContractRefused,
    error_selectors,
    refusal,
    reverted_without_data,
)

__all__ = ["Anchor", "AnchorReceipt", "AnchorRefused", "AnchorRegistry", "dataset_key"]

ARTIFACT = Path(__file__).parent / "contracts" / "AnchorRegistry.json"
ZERO = b"\x00" * 32
# ~100k gas per new checkpoint: 100 stay under EIP-7825's per-transaction cap (2**24 gas, in force
# on Ethereum since Osaka) and well under the 30M block gas limit of both local chains.
MAX_CHECKPOINTS_PER_TX = 100
# anchorMany's gas limit, given rather than estimated: web3 estimates by executing the call over
# and over (a binary search, ~13 runs and ~0.13 s per batch on the in-process EVM). A new
# checkpoint costs ~100k (measured: 102,978 of a 3-checkpoint transaction, 21k base included);
# unused gas is not charged. 100 checkpoints get 13.06M, under the 2**24 cap.
ANCHOR_GAS_BASE = 60_000
ANCHOR_GAS_PER_CHECKPOINT = 130_000
IN_PROCESS_GAS_LIMIT = 2**24
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class Anchor:
    """One anchored checkpoint as the contract stores it."""

    tree_size: int
    root: bytes
    manifest_hash: bytes
    anchored_at: int  # block timestamp, unix seconds
    block_number: int


@dataclass(frozen=True)
class Block:
    """What a block says of itself: where it is, and how many transactions it holds."""

    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    transactions: int


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


# (log id, tree size, root, manifest hash, previous anchored tree size of that log: 0 if none)
Checkpoint = tuple[str, int, bytes, bytes, int]


def dataset_key(dataset: str) -> bytes:
    """The on-chain dataset id: SHA-256 of the UTF-8 log id."""
    return hashlib.sha256(dataset.encode("utf-8")).digest()


def checksum_address(address: Any) -> str:
    """``0x`` and 40 hex digits in any case, as its EIP-55 checksum form; ValueError otherwise."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise ValueError(f"{address!r} is not an address (0x and 40 hex digits)")
    from eth_utils import to_checksum_address

    return to_checksum_address(address)


@cache
def load_artifact() -> dict[str, Any]:
    """The committed artifact; what is deployed is exactly what the recompile test checks."""
    return json.loads(ARTIFACT.read_text())


def in_process(w3: Any) -> bool:
    """Whether ``w3`` is the in-process EVM (eth-tester), where gas is free."""
    return type(w3.provider).__name__ == "EthereumTesterProvider"


def gas_given(w3: Any) -> dict[str, int]:
    """A transaction's gas limit where it need not be estimated: on the in-process EVM, where
    gas is free and unused gas is not charged, EIP-7825's per-transaction cap. web3 otherwise
    estimates it by executing the transaction over and over (py-evm's binary search: ~13 runs
    of every deployment and call). Elsewhere, nothing: the node estimates it."""
    return {"gas": IN_PROCESS_GAS_LIMIT} if in_process(w3) else {}


def deploy_receipt(w3: Any, artifact: dict, sender: str, *args: Any) -> Any:
    """Deploy ``artifact``'s contract from ``sender`` with constructor ``args``; the receipt."""
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(*args).transact({"from": sender, **gas_given(w3)})
    return w3.eth.wait_for_transaction_receipt(tx)


class DeployedContract:
    """A contract at ``address`` with the committed artifact's ABI, used from ``sender``."""

    _refused: type[ContractRefused] = AnchorRefused  # what its reverts raise

    def __init__(self, w3: Any, address: str, artifact: dict, sender: str | None = None) -> None:
        self.w3 = w3
        self.address = checksum_address(address)
        self._sender = sender
        self.contract = w3.eth.contract(address=self.address, abi=artifact["abi"])
        self._errors = error_selectors(artifact["abi"])

    @property
    def sender(self) -> str:
        """The account that sends transactions (the node's first account unless given)."""
        if self._sender is None:
            self._sender = self.w3.eth.accounts[0]
        return self._sender

    @property
    def in_process(self) -> bool:
        """Whether the chain is the in-process EVM (eth-tester), where gas is free."""
        return in_process(self.w3)

    def _transact(self, call: Any, gas: int | None = None) -> tuple[Any, Any]:
        """Send ``call``, ``gas`` its limit (None: ``gas_given``'s); its receipt, and what its
        dry run returned (None without one).

        A dry run first surfaces a revert with its custom error before any gas is paid. On the
        in-process EVM gas costs nothing and the dry run would execute the call a second time (a
        third of a small batch's anchoring, half of registering a fleet): the call is sent at
        once, and run again as a call only if it reverts, to read why.
        """
        given = {"gas": gas} if gas else gas_given(self.w3)
        dry_run = not self.in_process
        try:
            returned = call.call({"from": self.sender}) if dry_run else None
            tx = call.transact({"from": self.sender, **given})
        except Exception as error:  # web3 raises several types; decode the custom error if any
            raise refusal(error, self._errors, self._refused) from error
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if int(receipt.get("status", 1)) != 1:  # out of its gas, or lost a race on chain
            if not dry_run:
                try:
                    call.call({"from": self.sender})
                except Exception as error:
                    raise refusal(error, self._errors, self._refused) from error
            raise self._refused("Reverted", {"transaction": bytes(receipt["transactionHash"])})
        return receipt, returned


class AnchorRegistry(DeployedContract):
    """A deployed AnchorRegistry, used from the owner's (first) account by default."""

    def __init__(self, w3: Any, address: str, sender: str | None = None) -> None:
        super().__init__(w3, address, load_artifact(), sender)
        self._version: int | None = None

    @classmethod
    def deploy(cls, w3: Any, sender: str | None = None) -> AnchorRegistry:
        """Deploy a new registry owned by ``sender`` (default: the node's first account)."""
        sender = sender or w3.eth.accounts[0]
        receipt = deploy_receipt(w3, load_artifact(), sender)
        return cls(w3, receipt["contractAddress"], sender)

    @classmethod
    def at(cls, w3: Any, address: str, sender: str | None = None) -> AnchorRegistry:
        """An existing registry; refuses an address without code rather than fail later."""
        address = checksum_address(address)
        if not w3.eth.get_code(address):
            raise ValueError(f"no contract at {address} on chain {w3.eth.chain_id}")
        return cls(w3, address, sender)

    # -- what the registry says about itself (version 2) -------------------------------------

    @property
    def version(self) -> int:
        """2 for this contract; 1 for a registry deployed before identities and links."""
        if self._version is None:
            try:
                self._version = int(self.contract.functions.registryVersion().call())
            except Exception as error:
                # A version-1 registry has no such function: the call reverts, with no data.
                # Anything else (a node that did not answer, or answered "rate limited") says
                # nothing of the version, and is not remembered: a registry taken for version 1
                # would be replaced by a new one on `rda anchor --reanchor`.
                if not reverted_without_data(error):
                    raise
                self._version = 1
        return self._version

    def owner(self) -> str:
        return self.contract.functions.owner().call()

    def identity_hash(self) -> bytes | None:
        """SHA-256 of the current identity document; None if none (or version 1)."""
        if self.version < 2:
            return None
        value = bytes(self.contract.functions.identityHash().call())
        return None if value == ZERO else value

    def identity_document(self) -> bytes | None:
        """The exact bytes of the current identity document; None if none (or version 1)."""
        if self.version < 2:
            return None
        return bytes(self.contract.functions.identityDocument().call()) or None

    def identity_published_at(self, identity_hash: bytes) -> int | None:
        """The block in which this identity was (first) published here, or None."""
        if self.version < 2:
            return None
        block = self.contract.functions.identityPublishedAt(identity_hash).call()
        return int(block) or None

    def publish_identity(self, document: bytes) -> AnchorReceipt:
        """Publish the signed identity document (exact bytes), unless it is already current."""
        if self.identity_hash() == hashlib.sha256(document).digest():
            return AnchorReceipt(None, None, 0, created=False)
        # Sent without an estimate on the in-process EVM (``_transact``): it was half of the
        # chain's binding at every `rda run`'s start (~0.2 s), in the wait of a small first batch.
        sent = self._send(self.contract.functions.publishIdentity(document), checkpoints=1)
        return replace(sent, created=True, checkpoints_created=0)

    # -- anchors -----------------------------------------------------------------------------

    def anchor(
        self, dataset: str, tree_size: int, root: bytes, manifest_hash: bytes, previous: int = 0
    ) -> AnchorReceipt:
        """Anchor one checkpoint that follows the anchored checkpoint of size ``previous``.

        An identical existing anchor is found with a view call first and no transaction is
        sent, so a retried batch costs no gas and adds no block.
        """
        return self.anchor_many([(dataset, tree_size, root, manifest_hash, previous)])

    def anchor_many(self, checkpoints: list[Checkpoint], unanchored: bool = False) -> AnchorReceipt:
        """Anchor several checkpoints in one transaction (all or none, same rules as anchor).

        Checkpoints already anchored identically are left out; when none is left nothing is
        sent. A conflict, a shrinking tree or a wrong ``previous`` anywhere reverts the whole
        transaction. At most ``MAX_CHECKPOINTS_PER_TX`` may be sent at once; split larger lists.
        ``unanchored``: the caller has just read that none of them is anchored (a view call per
        checkpoint spared; the contract skips an identical anchor anyway).
        """
        if len(checkpoints) > MAX_CHECKPOINTS_PER_TX:
            raise ValueError(
                f"{len(checkpoints)} checkpoints in one transaction; the limit is "
                f"{MAX_CHECKPOINTS_PER_TX} (gas per transaction), split them"
            )
        pending, existing = [], None
        for checkpoint in map(_checked, checkpoints):
            existing = None if unanchored else self._existing(checkpoint)
            if existing is None:
                pending.append(checkpoint)
        if not pending:
            block = existing.block_number if len(checkpoints) == 1 and existing else None
            return AnchorReceipt(None, block, 0, created=False)
        datasets, sizes, roots, hashes, previous = zip(*pending, strict=True)
        ids = [dataset_key(d) for d in datasets]
        call = self.contract.functions.anchorMany(
            ids, list(sizes), list(roots), list(hashes), list(previous)
        )
        gas = ANCHOR_GAS_BASE + ANCHOR_GAS_PER_CHECKPOINT * len(pending)
        return self._send(call, checkpoints=len(pending), gas=gas)

    def get(self, dataset: str, tree_size: int) -> Anchor | None:
        """The anchor of ``dataset`` at ``tree_size``, or None (a view call, no log scan)."""
        if not 0 < tree_size < 2**64:
            return None
        root, manifest_hash, at, block = self.contract.functions.getAnchor(
            dataset_key(dataset), tree_size
        ).call()
        return None if root == ZERO else Anchor(tree_size, root, manifest_hash, at, block)

    def latest(self, dataset: str, block: int | str = "latest") -> Anchor | None:
        """The dataset's largest anchored checkpoint (as of ``block``), or None if it has none."""
        size, root, manifest_hash, at, anchored_in = self.contract.functions.latest(
            dataset_key(dataset)
        ).call(block_identifier=block)
        return None if root == ZERO else Anchor(size, root, manifest_hash, at, anchored_in)

    def head(self) -> Block:
        """The chain's newest block (a block read: no EVM run)."""
        return self.block("latest")

    def block(self, number: int | str) -> Block:
        found = self.w3.eth.get_block(number)
        return Block(
            int(found["number"]),
            bytes(found["hash"]),
            bytes(found["parentHash"]),
            int(found["timestamp"]),
            len(found["transactions"]),
        )

    def previous(self, dataset: str, tree_size: int) -> int | None:
        """The anchored size before ``tree_size`` (0: the first); None on a version-1 registry."""
        if self.version < 2:
            return None
        return int(self.contract.functions.previousTreeSize(dataset_key(dataset), tree_size).call())

    def _existing(self, checkpoint: Checkpoint) -> Anchor | None:
        """The identical anchor already on chain, if any (a differing one: the contract refuses)."""
        dataset, tree_size, root, manifest_hash, _previous = checkpoint
        anchor = self.get(dataset, tree_size)
        if anchor is not None and (anchor.root, anchor.manifest_hash) == (root, manifest_hash):
            return anchor
        return None

    def _send(self, call: Any, checkpoints: int, gas: int | None = None) -> AnchorReceipt:
        """Send ``call`` (``_transact``); what it anchored: the dry run's count, or on the
        in-process EVM (no dry run) its ``Anchored`` events."""
        receipt, created = self._transact(call, gas)
        gas = int(receipt["gasUsed"])
        if self.in_process:
            created = self._anchored_events(receipt)
        created = created if isinstance(created, (bool, int)) else True  # publishIdentity: None
        return AnchorReceipt(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x"),
            block_number=int(receipt["blockNumber"]),
            gas_used=gas,
            created=bool(created),
            checkpoints_created=int(created),
            gas_per_checkpoint=gas / checkpoints,
        )

    def _anchored_events(self, receipt: Any) -> int:
        """How many checkpoints the transaction anchored: its ``Anchored`` events."""
        return sum(
            1
            for entry in receipt["logs"]
            if checksum_address(entry["address"]) == self.address
            and entry["topics"]
            and bytes(entry["topics"][0]) == _anchored_topic()
        )


@cache
def _anchored_topic() -> bytes:
    """The topic of the registry's ``Anchored`` event, emitted once per new checkpoint."""
    from eth_utils import keccak

    return keccak(text="Anchored(bytes32,uint64,bytes32,bytes32)")


def _checked(checkpoint: Checkpoint) -> Checkpoint:
    """Refuse malformed input here with a clear message, not as an ABI encoding error."""
    if len(checkpoint) != 5:
        raise ValueError("a checkpoint is (log id, tree size, root, manifest hash, previous size)")
    dataset, tree_size, root, manifest_hash, previous = checkpoint
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a non-empty string, not {dataset!r}")
    tree_size, previous = _size(tree_size, "tree size"), _size(previous, "previous tree size")
    if not 0 < tree_size < 2**64:
        raise ValueError(f"tree size must be in 1..2**64-1, not {tree_size}")
    if not 0 <= previous < tree_size:
        raise ValueError(f"previous tree size {previous} must be below the tree size {tree_size}")
    for name, value in (("root", root), ("manifest hash", manifest_hash)):
        if not isinstance(value, bytes) or len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes, not {value!r}")
    if root == ZERO:
        raise ValueError("root must not be all zero (the contract reads it as 'no anchor')")
    return dataset, tree_size, root, manifest_hash, previous


def _size(value: Any, what: str) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)  # numpy and Arrow integers too
    except TypeError:
        raise ValueError(f"{what} must be an integer, not {value!r}") from None
