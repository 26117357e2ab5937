"""The demo's nodes on chain: the fleet registered, attacks mixed in, proven rows verified.

``rda demo`` deploys a NodeRegistry beside the AnchorRegistry and registers every node of the
hybrid fleet (ground AirNodes, relay platforms, gateways) with the key it signs with. One node is
revoked from three quarters of the way through the demo's time, so its later reports are
refused (``revoked_key``) and its earlier ones are published. Among the fleet's genuine reports
the demo slips what an attacker with write access to the topic could send: a forged report (a
node's real envelope on altered bytes: ``bad_signature``), a report without any signature
(``unsigned``) and one from a node nobody registered (``unknown_node``). After the batches a
few published rows of each signed dataset are proven and their device signatures checked the
way ``rda verify --bundle`` does.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from proofs.bundle import anchor_section, build_bundles, verify_bundle
from proofs.bundle_v2 import build_shard_bundles
from proofs.leaves import leaf_bytes_for_batch
from proofs.log import LogRef
from proofs.manifest import latest_manifest, load_manifest
from proofs.node_registry import NodeRegistry
from proofs.shard_log import dataset_files, shard_log
from proofs.trust import TrustRoot
from simulator.fleet import fleet_nodes
from simulator.messages import Message
from simulator.signing import FleetSigning, sign_batch, simulated_signer
from sinks.layout import DataLayout
from streaming.chain import ChainContext
from streaming.nodes import register_fleet

REVOKED_NODE = "an-0005"  # revoked from three quarters of the way through the demo
FORGED_NODE, UNSIGNED_NODE, UNKNOWN_NODE = "an-0003", "an-0004", "an-9999"
SIGNED_DATASETS = ("link_kpi.v1", "radio_kpi.v1")  # sampled for the bundle check


@dataclass(frozen=True)
class DemoNodes:
    signing: FleetSigning
    registered: dict[str, Any]
    revoked: dict[str, Any]


def register_demo_fleet(
    chain: ChainContext, nodes: int, seed: int, start_ms: int, duration_ms: int
) -> DemoNodes:
    """Deploy the NodeRegistry, register the fleet, revoke one node; the chain now checks
    device signatures against it (and the publisher identity names it)."""
    registry = NodeRegistry.deploy(chain.registry.w3)
    chain.use_node_registry(registry.address)
    fleet = fleet_nodes(nodes, seed, hybrid=True)
    signing = FleetSigning.for_nodes([n.node_id for n in fleet], seed)
    done = register_fleet(registry, fleet, signing, valid_from_ms=start_ms - 86_400_000)
    revoked = {}
    if any(n.node_id == REVOKED_NODE for n in fleet):
        from_ms = start_ms + duration_ms * 3 // 4
        registry.revoke_node(REVOKED_NODE, from_ms)
        revoked = {"node": REVOKED_NODE, "from_ms": from_ms}
    classes: dict[str, int] = {}
    for node in fleet:
        classes[node.node_class] = classes.get(node.node_class, 0) + 1
    registered = {"address": registry.address, "classes": classes, **done.as_dict()}
    return DemoNodes(signing, registered, revoked)


def attacks(messages: list[Message], seed: int) -> list[Message]:
    """Three records an intruder on the topic could write, built from the fleet's own (none in
    a demo too short for any AirNode to report)."""
    forged = _sample(messages, FORGED_NODE, lambda m: b'"radio_kpi"' in m.value)
    template = _sample(messages, UNSIGNED_NODE, lambda m: not m.defect)
    if forged is None or template is None:
        return []
    report = json.loads(forged.value)
    report["traffic"]["dl_kbps"] = round(report["traffic"]["dl_kbps"] * 3 + 1000, 1)  # a "boost"
    altered = replace(forged, value=json.dumps(report, separators=(",", ":")).encode())
    unsigned_report = json.loads(template.value)
    unsigned_report["ts_ms"] += 500  # a report the node never made
    unsigned = Message(
        template.key,
        json.dumps(unsigned_report, separators=(",", ":")).encode(),
        template.timestamp_ms + 500,
    )
    stranger_report = {**json.loads(template.value), "node": UNKNOWN_NODE}
    stranger = Message(
        UNKNOWN_NODE.encode(),
        json.dumps(stranger_report, separators=(",", ":")).encode(),
        template.timestamp_ms,
    )
    (stranger,) = sign_batch(simulated_signer(UNKNOWN_NODE, seed), [stranger])
    return [altered, unsigned, stranger]


def _sample(
    messages: list[Message], node: str, wanted: Callable[[Message], bool]
) -> Message | None:
    """``node``'s first ``wanted`` message; in a fleet too small to have ``node``, the first
    AirNode's (``an-…``: relays and gateways report other things); None if there is none."""
    airnodes = [m for m in messages if m.key.startswith(b"an-") and wanted(m)]
    return next((m for m in airnodes if m.key == node.encode()), airnodes[0] if airnodes else None)


def prove_and_check(data_dir: Path, trust: TrustRoot, per_dataset: int = 2) -> list[dict]:
    """Bundles for the first rows of each signed dataset's latest checkpoint, verified with
    their device signatures (``rda prove`` + ``rda verify --bundle``, in short)."""
    layout = DataLayout(data_dir)
    verdicts = []
    for dataset in SIGNED_DATASETS:
        dataset_dir = layout.dataset_dir(dataset)
        manifest_path = latest_manifest(dataset_dir)
        if manifest_path is None:
            continue
        manifest, digest = load_manifest(manifest_path)
        file = dataset_files(dataset_dir, manifest)[0]
        table = pq.read_table(dataset_dir / file.entry["path"])
        signed = [i for i, s in enumerate(table.column("device_signed").to_pylist()) if s]
        rows = signed[:per_dataset]
        checkpoint = {
            "tree_size": manifest["checkpoint"]["tree_size"],
            "root": manifest["checkpoint"]["root"],
            "manifest_sha256": digest.hex(),
        }
        indices = [file.entry["leaf_start"] + r for r in rows]
        leaves = leaf_bytes_for_batch(table.take(rows))
        anchor = _anchor_of(dataset_dir, checkpoint["tree_size"])
        if file.shard_manifest is None:  # version 1: the dataset's own log
            log = LogRef(file.log, dataset_dir / "log")
            bundles = build_bundles(log, indices, leaves, checkpoint, anchor, dataset)
        else:
            with tempfile.TemporaryDirectory(prefix="rda-demo-prove-") as logs:
                shard = shard_log(dataset_dir, file.shard_manifest, Path(logs))
                section = anchor_section(dataset, anchor)
                bundles = build_shard_bundles(
                    shard, indices, leaves, manifest["shards"], checkpoint, section, dataset
                )
        for bundle in bundles:
            verdict = verify_bundle(bundle, trust).as_dict()
            device = next((c for c in verdict["checks"] if c["check"] == "device"), None)
            verdicts.append(
                {
                    "dataset": dataset,
                    "leaf_index": bundle["leaf_index"],
                    "verdict": verdict["verdict"],
                    "device": device,
                }
            )
    return verdicts


def _anchor_of(dataset_dir: Path, tree_size: int) -> dict | None:
    """Where the checkpoint was anchored, as the runtime recorded it beside its manifest (a
    claim the bundle carries; the verifier reads the chain)."""
    record = dataset_dir / "checkpoints" / f"{tree_size:012d}.anchor.json"
    try:
        found = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return found if found.get("contract") else None
