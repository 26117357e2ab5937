"""The NodeRegistry contract: nodes as ERC-721 tokens with their Ed25519 signing keys.

Each node of the network (a ground AirNode, a high-altitude relay platform, a backhaul link) is
a token owned by its owner's wallet. The token holds the node's class, a claimed H3 cell and its
signing keys, each valid for reports whose *event time* (unix milliseconds) lies in
``[valid_from_ms, valid_until_ms)``; a revoked node reports nothing from its revocation time on.
Validity only shrinks, so the current state says, for any event time, whether a key could sign
then: a revocation invalidates later reports and leaves earlier ones valid.

Reads of one node are view calls (``nodeInfo``, ``keysOf``). The ingest cache instead folds the
contract's events (``events``, ``fold_events``), which also gives the state *as of* any block —
what a retried batch needs to decide exactly as the first attempt did. The ABI and bytecode come
from the committed artifact ``contracts/NodeRegistry.json`` (``infra.solc``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from proofs.anchor import DeployedContract, checksum_address, deploy_receipt
from proofs.anchor_errors import ContractRefused
from proofs.contract_code import code_problem
from proofs.ed25519_points import small_order

ARTIFACT = Path(__file__).parent / "contracts" / "NodeRegistry.json"
# The contract's NodeClass enum, in order.
NODE_CLASSES = ("ground_airnode", "high_altitude_relay", "backhaul")
OPEN = 2**64 - 1  # a key or node without an end
NODE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Registrations are sent with a gas limit given, not estimated: web3 estimates by executing the
# call over and over (py-evm's binary search, ~13 runs), which was 8-9 s of the 10.7 s the demo
# took to register its 52 nodes on the in-process EVM. A node costs at most ~260k in a batch
# (measured: 259,273 each for 40 nodes with 64-character ids, the longest; 194,198 with 6) and
# ~295k alone; unused gas is not charged. 50 nodes get 15.08M, under EIP-7825's 2**24 cap.
MAX_NODES_PER_TX = 50
REGISTER_GAS_BASE = 80_000
REGISTER_GAS_PER_NODE = 300_000


class NodeRegistryRefused(ContractRefused):
    """The NodeRegistry refused a call (``error`` names the Solidity error)."""


@cache
def load_artifact() -> dict[str, Any]:
    return json.loads(ARTIFACT.read_text())


def key_id(public_key: bytes) -> str:
    """SHA-256 (hex) of the raw 32-byte Ed25519 public key: how signatures name their key."""
    return hashlib.sha256(public_key).hexdigest()


def token_id(node_id: str) -> int:
    """The node's token id: keccak-256 of its UTF-8 id, as the contract computes it."""
    from eth_utils import keccak

    return int.from_bytes(keccak(node_id.encode("utf-8")), "big")


@dataclass(frozen=True)
class NodeKey:
    index: int
    public_key: bytes
    valid_from_ms: int
    valid_until_ms: int | None  # None: no end (yet)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def valid_at(self, event_ms: int) -> bool:
        end = OPEN if self.valid_until_ms is None else self.valid_until_ms
        return self.valid_from_ms <= event_ms < end


@dataclass(frozen=True)
class NodeRecord:
    """A node as the registry holds it."""

    token_id: int
    node_id: str
    node_class: str
    h3_cell: int
    owner: str
    registered_at: int  # block time, unix seconds
    revoked_from_ms: int | None  # None: not revoked
    keys: tuple[NodeKey, ...]

    def key(self, wanted: str) -> NodeKey | None:
        return next((k for k in self.keys if k.key_id == wanted), None)

    def problem_at(self, wanted_key_id: str, event_ms: int) -> tuple[str, str] | None:
        """Why a report of event time ``event_ms`` signed by ``wanted_key_id`` is refused:
        (``revoked_key`` | ``bad_signature``, reason), or None."""
        key = self.key(wanted_key_id)
        if key is None:
            return "bad_signature", f"key {wanted_key_id[:16]}… is not a key of node {self.node_id}"
        if small_order(key.public_key):
            return "bad_signature", (
                f"key {wanted_key_id[:16]}… of node {self.node_id} is an Ed25519 point of small "
                "order: any signature verifies under it, so it vouches for nothing"
            )
        if self.revoked_from_ms is not None and event_ms >= self.revoked_from_ms:
            return "revoked_key", (
                f"node {self.node_id} is revoked from {self.revoked_from_ms} ms; "
                f"the report is of {event_ms}"
            )
        if not key.valid_at(event_ms):
            if event_ms < key.valid_from_ms:
                return "revoked_key", (
                    f"key {key.index} of node {self.node_id} is valid only from "
                    f"{key.valid_from_ms} ms; the report is of {event_ms}"
                )
            return "revoked_key", (
                f"key {key.index} of node {self.node_id} was valid only until "
                f"{key.valid_until_ms} ms (rotated or revoked); the report is of {event_ms}"
            )
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "token_id": hex(self.token_id),
            "class": self.node_class,
            "h3_cell": format(self.h3_cell, "x"),
            "owner": self.owner,
            "registered_at": self.registered_at,
            "revoked_from_ms": self.revoked_from_ms,
            "keys": [
                {
                    "index": k.index,
                    "key_id": k.key_id,
                    "public_key": k.public_key.hex(),
                    "valid_from_ms": k.valid_from_ms,
                    "valid_until_ms": k.valid_until_ms,
                }
                for k in self.keys
            ],
        }


@dataclass(frozen=True)
class Sent:
    """One transaction the registry accepted."""

    tx_hash: str
    block_number: int
    gas_used: int


class NodeRegistry(DeployedContract):
    """A deployed NodeRegistry; transactions come from ``sender`` (default: the first account)."""

    _refused = NodeRegistryRefused

    def __init__(self, w3: Any, address: str, sender: str | None = None) -> None:
        super().__init__(w3, address, load_artifact(), sender)

    def as_sender(self, sender: str) -> NodeRegistry:
        """The same registry, used from another account (a node owner's wallet)."""
        return NodeRegistry(self.w3, self.address, checksum_address(sender))

    @classmethod
    def deploy(cls, w3: Any, admin: str | None = None) -> NodeRegistry:
        """A new registry; ``admin`` (default: the first account) administers and registers."""
        admin = admin or w3.eth.accounts[0]
        receipt = deploy_receipt(w3, load_artifact(), admin, admin)
        return cls(w3, receipt["contractAddress"], admin)

    @classmethod
    def at(cls, w3: Any, address: str, sender: str | None = None) -> NodeRegistry:
        """An existing registry; refuses an address without this contract's code, byte for
        byte (a look-alike could answer any key for any node: ``proofs/contract_code.py``)."""
        address = checksum_address(address)
        code = w3.eth.get_code(address)
        if not code:
            raise ValueError(f"no contract at {address} on chain {w3.eth.chain_id}")
        if problem := code_problem(code, load_artifact()):
            raise ValueError(f"the contract at {address} is not a NodeRegistry: {problem}")
        return cls(w3, address, sender)

    # -- changes ---------------------------------------------------------------------------

    def register(
        self,
        node_id: str,
        node_class: str,
        h3_cell: int,
        public_key: bytes,
        valid_from_ms: int,
        owner: str | None = None,
    ) -> Sent:
        """Mint ``node_id`` to ``owner`` (default: the sender) with its first key."""
        if not NODE_ID.match(node_id):
            raise ValueError(f"node id {node_id!r}: 1 to 64 characters of A-Z a-z 0-9 . _ : -")
        if node_class not in NODE_CLASSES:
            raise ValueError(f"node class {node_class!r} (known: {', '.join(NODE_CLASSES)})")
        call = self.contract.functions.register(
            checksum_address(owner or self.sender),
            node_id,
            NODE_CLASSES.index(node_class),
            _uint64(h3_cell, "H3 cell"),
            _public_key(public_key),
            _uint64(valid_from_ms, "valid from"),
        )
        return self._send(call, gas=REGISTER_GAS_BASE + REGISTER_GAS_PER_NODE)

    def register_many(
        self, entries: list[tuple[str, str, int, bytes, str | None]], valid_from_ms: int
    ) -> Sent:
        """Several nodes in one transaction: (node id, class, H3 cell, public key, owner or
        None) each, their first keys all valid from ``valid_from_ms``."""
        if len(entries) > MAX_NODES_PER_TX:
            raise ValueError(
                f"{len(entries)} nodes in one transaction, more than {MAX_NODES_PER_TX} (gas per "
                "transaction): split them"
            )
        for node_id, node_class, *_ in entries:
            if not NODE_ID.match(node_id) or node_class not in NODE_CLASSES:
                raise ValueError(f"node {node_id!r} of class {node_class!r} cannot be registered")
        call = self.contract.functions.registerMany(
            [checksum_address(owner or self.sender) for *_, owner in entries],
            [e[0] for e in entries],
            [NODE_CLASSES.index(e[1]) for e in entries],
            [_uint64(e[2], "H3 cell") for e in entries],
            [_public_key(e[3]) for e in entries],
            _uint64(valid_from_ms, "valid from"),
        )
        return self._send(call, gas=REGISTER_GAS_BASE + REGISTER_GAS_PER_NODE * len(entries))

    def rotate(self, node_id: str, public_key: bytes, from_ms: int) -> Sent:
        """A new key from ``from_ms``; the current key ends there."""
        call = self.contract.functions.rotateKey(
            token_id(node_id), _public_key(public_key), _uint64(from_ms, "from")
        )
        return self._send(call)

    def revoke_key(self, node_id: str, index: int, from_ms: int) -> Sent:
        call = self.contract.functions.revokeKey(token_id(node_id), index, _uint64(from_ms, "from"))
        return self._send(call)

    def revoke_node(self, node_id: str, from_ms: int) -> Sent:
        call = self.contract.functions.revokeNode(token_id(node_id), _uint64(from_ms, "from"))
        return self._send(call)

    def transfer(self, node_id: str, to: str) -> Sent:
        """Move the node's token from the sender (its owner) to ``to``."""
        call = self.contract.functions.transferFrom(
            self.sender, checksum_address(to), token_id(node_id)
        )
        return self._send(call)

    def _send(self, call: Any, gas: int | None = None) -> Sent:
        """Send ``call`` (``_transact``); ``gas``: its limit, when it is computed here."""
        receipt, _ = self._transact(call, gas)
        return Sent(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x"),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
        )

    # -- reads (view calls) ----------------------------------------------------------------

    def node(self, node_id: str) -> NodeRecord | None:
        """The node as registered now, or None if it never was."""
        return self._node(token_id(node_id))

    def nodes(self) -> list[NodeRecord]:
        functions = self.contract.functions
        count = functions.nodeCount().call()
        found = [self._node(functions.tokenIdAt(i).call()) for i in range(count)]
        return [n for n in found if n is not None]

    def _node(self, token: int) -> NodeRecord | None:
        functions = self.contract.functions
        try:
            node_id, node_class, h3_cell, revoked, registered, owner = functions.nodeInfo(
                token
            ).call()
        except (OSError, TimeoutError):
            raise
        except Exception:  # ERC721NonexistentToken
            return None
        keys = tuple(
            NodeKey(i, bytes(pk), int(start), None if end == OPEN else int(end))
            for i, (pk, start, end) in enumerate(functions.keysOf(token).call())
        )
        return NodeRecord(
            token_id=token,
            node_id=node_id,
            node_class=NODE_CLASSES[node_class],
            h3_cell=int(h3_cell),
            owner=owner,
            registered_at=int(registered),
            revoked_from_ms=None if revoked == OPEN else int(revoked),
            keys=keys,
        )

    # -- events (the ingest cache) ---------------------------------------------------------

    def events(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """The registry's events in ``[from_block, to_block]``, decoded, in chain order:
        ``{"event", "block", "log_index", "args"}`` (block time added to registrations)."""
        if to_block < from_block:
            return []
        logs = self.w3.eth.get_logs(
            {"address": self.address, "fromBlock": from_block, "toBlock": to_block}
        )
        decoders = _event_decoders(self.contract)
        decoded = []
        for entry in logs:
            topic = bytes(entry["topics"][0]) if entry["topics"] else b""
            name = decoders.get(topic)
            if name is None:
                continue  # role grants, approvals: not what a node's validity depends on
            event = self.contract.events[name]().process_log(entry)
            item = {
                "event": name,
                "block": int(entry["blockNumber"]),
                "log_index": int(entry["logIndex"]),
                "args": dict(event["args"]),
            }
            if name == "NodeRegistered":
                item["time"] = int(self.w3.eth.get_block(item["block"])["timestamp"])
            decoded.append(item)
        return sorted(decoded, key=lambda e: (e["block"], e["log_index"]))


_FOLDED = ("NodeRegistered", "KeyAdded", "KeyEnded", "NodeRevoked", "Transfer")


def _event_decoders(contract: Any) -> dict[bytes, str]:
    from eth_utils import event_abi_to_log_topic

    return {
        bytes(event_abi_to_log_topic(item)): item["name"]
        for item in contract.abi
        if item["type"] == "event" and item["name"] in _FOLDED
    }


def fold_events(events: list[dict[str, Any]], at_block: int | None = None) -> dict[str, NodeRecord]:
    """The registry's nodes by node id, as of ``at_block`` (None: after every event given), from
    its events alone; equal to what the view calls return at that block. Linear in the events:
    a node's keys are kept in a list until the end (a tuple rebuilt at each of 8,000 rotations
    took 0.5 s a snapshot, and one is taken a batch)."""
    by_token: dict[int, NodeRecord] = {}
    keys: dict[int, list[NodeKey]] = {}
    owners: dict[int, str] = {}
    for event in events:
        if at_block is not None and event["block"] > at_block:
            break
        args, name = event["args"], event["event"]
        token = int(args["tokenId"])
        if name == "Transfer":
            owners[token] = args["to"]
            if token in by_token:
                by_token[token] = replace(by_token[token], owner=args["to"])
        elif name == "NodeRegistered":
            by_token[token] = NodeRecord(
                token, args["nodeId"], NODE_CLASSES[args["nodeClass"]], int(args["h3Cell"]),
                owners.get(token, ""), event.get("time", 0), None, (),
            )  # fmt: skip
            keys[token] = []
        elif name == "KeyAdded":
            index, public_key = int(args["keyIndex"]), bytes(args["publicKey"])
            keys[token].append(NodeKey(index, public_key, args["validFromMs"], None))
        elif name == "KeyEnded":
            index = int(args["keyIndex"])
            ended = replace(keys[token][index], valid_until_ms=int(args["validUntilMs"]))
            keys[token][index] = ended
        elif name == "NodeRevoked":
            by_token[token] = replace(by_token[token], revoked_from_ms=int(args["revokedFromMs"]))
    folded = (replace(node, keys=tuple(keys[token])) for token, node in by_token.items())
    return {node.node_id: node for node in folded}


def _uint64(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < OPEN:
        raise ValueError(f"{what} must be an integer in 0 … 2**64-2, not {value!r}")
    return value


def _public_key(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32 or value == bytes(32):
        raise ValueError("an Ed25519 public key is 32 bytes, not all zero")
    if small_order(value):
        raise ValueError("an Ed25519 public key of small order vouches for nothing")
    return value
