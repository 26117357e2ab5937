"""The network's nodes on chain: registering the simulated fleet, and ``rda nodes`` operations.

``register_fleet`` puts every node of the simulated fleet (ground AirNodes, high-altitude relay
platforms, backhaul gateways: ``simulator.fleet.fleet_nodes``) into the NodeRegistry with the
public key it signs with, its class and its H3 cell; a node already registered with that key is
left alone, so registering twice is a no-op. The other functions are what ``rda nodes`` does:
connect to the registry, register one node, rotate or revoke a key, revoke or transfer a node.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from proofs.node_registry import NodeRegistry, NodeRegistryRefused, Sent
from simulator.fleet import FleetNode
from simulator.signing import FleetSigning
from streaming.errors import SettingsError

PER_TRANSACTION = 40  # ~205k gas a node: 40 stay well under a transaction's 2**24 gas cap
H3_RESOLUTION = 8  # the cell a node claims (~0.7 km²), as the privacy policy publishes places
_EPOCH_MS = re.compile(r"^\d{1,16}$")


@dataclass(frozen=True)
class Registered:
    """What ``register_fleet`` did."""

    registered: int
    already: int
    gas: list[float]  # per node registered (its share of a batched transaction)

    def as_dict(self) -> dict[str, Any]:
        return {
            "registered": self.registered,
            "already_registered": self.already,
            "gas_per_registration": round(sum(self.gas) / len(self.gas)) if self.gas else None,
        }


def h3_cell(lat: float, lon: float) -> int:
    import h3

    return int(h3.latlng_to_cell(lat, lon, H3_RESOLUTION), 16)


def register_fleet(
    registry: NodeRegistry,
    nodes: Iterable[FleetNode],
    signing: FleetSigning,
    valid_from_ms: int = 0,
    owners: list[str] | None = None,
) -> Registered:
    """Register each node (its current key in ``signing``); owners round-robin over ``owners``
    (default: the registrar's own account)."""
    already = 0
    held = {n.node_id: n for n in registry.nodes()}  # one listing, not a lookup per node
    entries = []
    for position, node in enumerate(nodes):
        signer = signing.keys.get(node.node_id)
        if signer is None:
            continue
        found = held.get(node.node_id)
        if found is not None:
            if found.key(signer.key_id.hex()) is None:
                raise SettingsError(
                    f"node {node.node_id} is registered in {registry.address} with other keys; "
                    "rotate its key (`rda nodes rotate`) or use another registry"
                )
            already += 1
            continue
        owner = owners[position % len(owners)] if owners else None
        cell = h3_cell(node.lat, node.lon)
        entries.append((node.node_id, node.node_class, cell, signer.public_key, owner))
    gas = []
    for start in range(0, len(entries), PER_TRANSACTION):
        part = entries[start : start + PER_TRANSACTION]
        sent = registry.register_many(part, valid_from_ms)
        gas.extend([sent.gas_used / len(part)] * len(part))
    return Registered(len(entries), already, gas)


def connect_registry(rpc_url: str, address: str, account: str | None = None) -> NodeRegistry:
    """The NodeRegistry at ``address`` on the node at ``rpc_url``, used from ``account``."""
    from streaming.chain import connect_node

    try:
        w3 = connect_node("rpc", rpc_url)
        return NodeRegistry.at(w3, address, account)
    except (ConnectionError, ValueError) as error:
        raise SettingsError(str(error)) from None


def event_time_ms(text: str | None) -> int:
    """An event time given as epoch milliseconds or ISO 8601 (default: now), in ms."""
    if text is None:
        return int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    if _EPOCH_MS.match(text):
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"{text!r} is neither epoch milliseconds nor an ISO 8601 time"
        ) from None
    return int(when.replace(tzinfo=when.tzinfo or dt.timezone.utc).timestamp() * 1000)


def public_key(text: str) -> bytes:
    """A raw Ed25519 public key in hex (64 digits)."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SettingsError(f"a public key is 64 hex digits (raw Ed25519), not {text!r}")
    return key


def refused(error: NodeRegistryRefused) -> SettingsError:
    """A registry refusal as a user-facing error (what the contract said, in its words)."""
    hints = {
        "NotNodeController": "only the node's owner (or an account it approved) may do this; "
        "pass --account OWNER",
        "AccessControlUnauthorizedAccount": "only a registrar may register nodes",
        "ERC721InvalidSender": "this node id is registered already",
        "KeyInUse": "this public key already belongs to a node",
        "NodeIsRevoked": "the node is revoked from that time",
        "RotationNotAfterCurrentKey": "a new key must start after the current key began",
        "NotShortening": "a revocation may only end a key earlier, and not before it began",
        "ERC721NonexistentToken": "no such node",
    }
    hint = hints.get(error.error)
    return SettingsError(f"the node registry refused: {error}" + (f" ({hint})" if hint else ""))


def sent_dict(sent: Sent) -> dict[str, Any]:
    return {"tx": sent.tx_hash, "block": sent.block_number, "gas_used": sent.gas_used}
