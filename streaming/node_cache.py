"""The ingest's local cache of the NodeRegistry, refreshed from the registry's events.

Before each batch is planned the cache reads the events of the blocks it has not seen yet
(``NodeRegistry.events``: registrations, keys added and ended, revocations, transfers) and the
plan records the block it reached (``node_registry_block``). The batch verifies against the
registry *as of that block* (``fold_events``), so a batch redone after a crash decides exactly as
the first attempt did, however the registry changed since: the same files, rows and roots.
For the same reason the plan records the policy it was planned under, and the registry
(``signatures``): a batch redone after a restart with other settings is checked as planned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pipelines.device_signatures import (
    REQUIRED,
    UNSIGNED,
    DeviceCheck,
    RegisteredKey,
    RegisteredNode,
    RegistrySnapshot,
)
from proofs.ed25519_points import small_order
from proofs.node_registry import NodeRecord, NodeRegistry, fold_events
from streaming.errors import SettingsError

log = logging.getLogger("rda.run")
AUTO = "auto"  # required when a node registry is configured, else unsigned
SIGNATURE_POLICIES = (AUTO, REQUIRED, UNSIGNED)
PLAN_KEY = "node_registry_block"
PLAN_POLICY_KEY = "signatures"  # {"policy": required or unsigned, "registry": address or None}


@dataclass
class NodeRegistryCache:
    """The registry's events seen so far, and the last block read."""

    registry: NodeRegistry
    events: list[dict[str, Any]] = field(default_factory=list)
    block: int = -1

    @property
    def address(self) -> str:
        return self.registry.address

    def refresh(self) -> int:
        """Read the events of the blocks not seen yet; the latest block now read."""
        latest = int(self.registry.w3.eth.block_number)
        if latest > self.block:
            new = self.registry.events(self.block + 1, latest)
            self.events.extend(new)
            self.block = latest
            if new:
                log.debug("node registry: %d new events up to block %d", len(new), latest)
        return self.block

    def snapshot(self, at_block: int | None = None) -> RegistrySnapshot:
        """The registry as of ``at_block`` (None: now)."""
        if at_block is None or at_block > self.block:
            self.refresh()
        block = self.block if at_block is None else min(at_block, self.block)
        nodes = fold_events(self.events, block)
        return RegistrySnapshot(
            self.address, block, {node_id: _registered(n) for node_id, n in nodes.items()}
        )


def _registered(node: NodeRecord) -> RegisteredNode:
    keys = {
        k.key_id: RegisteredKey(
            k.index, k.public_key, k.valid_from_ms, k.valid_until_ms, small_order(k.public_key)
        )
        for k in node.keys
    }
    return RegisteredNode(node.node_id, keys, node.revoked_from_ms)


def resolve_policy(policy: str, cache: NodeRegistryCache | None) -> str:
    """A topic's signature policy once ``auto`` is decided by whether a registry is known."""
    if policy == AUTO:
        return REQUIRED if cache is not None else UNSIGNED
    return policy


def planned_policy(policy: str, cache: NodeRegistryCache | None) -> dict[str, str | None]:
    """What a new plan records of its signature check (``PLAN_POLICY_KEY``)."""
    resolved = resolve_policy(policy, cache)
    registry = cache.address if resolved == REQUIRED and cache is not None else None
    return {"policy": resolved, "registry": registry}


def device_check(
    policy: str, cache: NodeRegistryCache | None, plan: dict, topic: str
) -> DeviceCheck:
    """What a batch checks: the policy its plan recorded (else, for a plan from before, its
    topic's), against the registry as of the plan's block."""
    recorded = plan.get(PLAN_POLICY_KEY)
    policy = resolve_policy(policy, cache) if recorded is None else recorded["policy"]
    if recorded is not None and policy == REQUIRED and recorded["registry"] is not None:
        _same_registry(recorded["registry"], cache, plan, topic)
    if policy == UNSIGNED:
        return DeviceCheck(UNSIGNED, None, topic)
    if cache is None:
        raise SettingsError(
            f"topic {topic} requires device signatures but no node registry is configured: pass "
            "--node-registry ADDRESS (`rda infra up --chain anvil` deploys one), or set "
            f'signatures = "unsigned" for a source that cannot sign'
        )
    return DeviceCheck(REQUIRED, cache.snapshot(plan.get(PLAN_KEY)), topic)


def _same_registry(planned: str, cache: NodeRegistryCache | None, plan: dict, topic: str) -> None:
    """A batch planned against one registry is redone against it, or not at all: checked
    against another (or none), the same records would be published and then quarantined."""
    if cache is not None and cache.address.lower() == planned.lower():
        return
    now = "no node registry" if cache is None else f"the node registry {cache.address}"
    raise SettingsError(
        f"batch {plan.get('batch_id')} of topic {topic} was planned checking device signatures "
        f"against the node registry {planned}, and this run has {now}: restart with "
        f"--node-registry {planned} to finish it (a batch is redone exactly as it was planned)"
    )
