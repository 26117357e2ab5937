"""The auditor's check of a published row's device signature (docs/proof-format.md §16).

A row published from a signing node carries its per-report proof: the key id, the salted
payload commitment, the leaf's index and audit path in the node's signed batch, and the node's
Ed25519 signature of the batch. From the row alone the auditor recomputes the report's leaf
(node id, key id, event time, commitment), folds the path to the batch root, rebuilds the signed
batch message and checks the signature with the key the NodeRegistry holds for that node — the
registry named by the *pinned* publisher identity, never one named by the data — and that the
key (and the node) could sign at the row's event time. Together with the row's inclusion proof
and anchor this is node → row → root → anchor.

What it proves: the registered node, with a key valid then, signed a report of this event time
whose salted bytes hash to ``device_payload_sha256``. That the row's values are that report's,
standardized, is the publisher's signed statement (the raw report and its nonce stay on the
publisher's private side, and settle a dispute).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import struct
from collections.abc import Mapping
from typing import Any

from proofs.node_registry import NodeRecord, NodeRegistry
from proofs.verdict import Check

PROOF_FIELDS = (
    "device_key_id",
    "device_payload_sha256",
    "device_batch_index",
    "device_batch_size",
    "device_batch_path",
    "device_signature",
)
LEAF_DOMAIN, BATCH_DOMAIN = b"rda.report.v1", b"rda.batch.v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PATH = re.compile(r"^(?:[0-9a-f]{64}){0,16}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{128}$")
_NODE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def leaf_hash(node_id: str, key_id: bytes, event_ms: int, commitment: bytes) -> bytes:
    """SHA-256(0x00 ‖ rda.report.v1 ‖ u8 length ‖ node id ‖ key id ‖ i64 event ms ‖ commitment)."""
    node = node_id.encode("utf-8")
    data = LEAF_DOMAIN + bytes([len(node)]) + node + key_id + struct.pack(">q", event_ms)
    return hashlib.sha256(b"\x00" + data + commitment).digest()


def batch_message(node_id: str, key_id: bytes, size: int, root: bytes) -> bytes:
    """rda.batch.v1 ‖ u8 length ‖ node id ‖ key id ‖ u32 size ‖ root: what the node signs."""
    node = node_id.encode("utf-8")
    return BATCH_DOMAIN + bytes([len(node)]) + node + key_id + struct.pack(">I", size) + root


def batch_root(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root an RFC 9162 audit path folds ``leaf`` into (2.1.3.2 without the final
    comparison), or None when the path does not fit leaf ``index`` of ``size``."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def device_check(row: Mapping[str, Any], trust: Any) -> Check | None:
    """The ``device`` check of a published row; None for a row of a schema version without
    device signatures (nothing is claimed, nothing to check)."""
    if "device_signed" not in row:
        return None
    if row["device_signed"] is not True:
        return Check(
            "device",
            None,
            "not checked: the row comes from a source configured unsigned (device_signed is "
            f"{_json(row['device_signed'])}): nothing ties it to a registered node",
        )
    if "device_signature" not in row:
        return Check(
            "device",
            None,
            "not checked: this dataset publishes no per-report proof (the signature was "
            "verified at ingest; published, it would reveal report times the privacy policy "
            "coarsens)",
        )
    claim = _claim(row)
    if isinstance(claim, str):
        return Check("device", False, f"malformed device proof: {claim}")
    registry = _registry(trust)
    if isinstance(registry, Check):
        return registry
    return _verify(claim, _node(trust, registry, claim["node_id"]), registry.address)


def _claim(row: Mapping[str, Any]) -> dict[str, Any] | str:
    """The row's device proof, checked for shape (what is wrong, as a string, otherwise)."""
    node_id, key_id = row.get("node_id"), row.get("device_key_id")
    commitment, path, signature = (
        row.get("device_payload_sha256"),
        row.get("device_batch_path"),
        row.get("device_signature"),
    )
    index, size = row.get("device_batch_index"), row.get("device_batch_size")
    if not isinstance(node_id, str) or not _NODE_ID.match(node_id):
        return "node_id is not a node id"
    for name, value, pattern in (
        ("device_key_id", key_id, _HEX64),
        ("device_payload_sha256", commitment, _HEX64),
        ("device_batch_path", path, _PATH),
        ("device_signature", signature, _SIGNATURE),
    ):
        if not isinstance(value, str) or not pattern.match(value):
            return f"{name} is not lowercase hex of the documented length"
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, size)):
        return "device_batch_index and device_batch_size must be integers"
    if not 0 <= index < size <= 65535:
        return f"leaf {index} of a batch of {size}"
    event_ms = _event_ms(row.get("event_time"))
    if event_ms is None:
        return "event_time is not a UTC time in whole milliseconds"
    return {
        "node_id": node_id,
        "key_id": key_id,
        "event_ms": event_ms,
        "commitment": bytes.fromhex(commitment),
        "index": index,
        "size": size,
        "path": [bytes.fromhex(path[i : i + 64]) for i in range(0, len(path), 64)],
        "signature": bytes.fromhex(signature),
    }


def _event_ms(value: Any) -> int | None:
    if not isinstance(value, str) or not _TIME.match(value):
        return None
    try:  # the pattern lets a month 13 or an hour 25 through
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    micros = (when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(
        microseconds=1
    )
    return micros // 1000 if micros % 1000 == 0 else None


def _registry(trust: Any) -> NodeRegistry | Check:
    """The NodeRegistry the pinned identity names, on the pinned chain."""
    identity = trust.identity_check()
    if identity.ok is not True or trust.identity is None:
        # Never read a node registry on a chain the pinned identity does not name: there, any
        # contract can hold the address and any key.
        reason = "the publisher identity did not check out" if identity.ok is False else None
        return Check("device", None, f"not checked: {reason or identity.detail}")
    address = trust.identity.node_registry
    if address is None:
        return Check(
            "device",
            None,
            "not checked: the pinned publisher identity names no node registry (version 1)",
        )
    if trust.w3 is None:
        return Check("device", None, f"not checked: node registry {address}: {trust.why_no_chain}")
    cache = trust.__dict__.setdefault("_node_registries", {})
    if address not in cache:
        try:
            cache[address] = NodeRegistry.at(trust.w3, address)
        except ValueError as error:
            return Check("device", False, f"node registry of the pinned identity: {error}")
        except Exception as error:  # the node did not answer
            return Check("device", None, f"not checked: node registry {address}: {error}")
    return cache[address]


def _node(trust: Any, registry: NodeRegistry, node_id: str) -> NodeRecord | None:
    """The node as the registry holds it now (read once per verifier)."""
    nodes = trust.__dict__.setdefault("_registered_nodes", {})
    key = (registry.address, node_id)
    if key not in nodes:
        nodes[key] = registry.node(node_id)
    return nodes[key]


def _verify(claim: dict[str, Any], node: NodeRecord | None, registry: str) -> Check:
    node_id, key_id, event_ms = claim["node_id"], claim["key_id"], claim["event_ms"]
    if node is None:
        return Check("device", False, f"node {node_id} is not in the node registry {registry}")
    key = node.key(key_id)
    if key is None:
        return Check("device", False, f"key {key_id[:16]}… is not a key of node {node_id}")
    leaf = leaf_hash(node_id, bytes.fromhex(key_id), event_ms, claim["commitment"])
    root = batch_root(leaf, claim["index"], claim["size"], claim["path"])
    message = batch_message(node_id, bytes.fromhex(key_id), claim["size"], root or b"")
    if root is None or not _signed(key.public_key, claim["signature"], message):
        return Check(
            "device",
            False,
            f"the device signature does not verify for node {node_id}, key {key_id[:16]}…: "
            "the row's node, event time or proof was altered",
        )
    problem = node.problem_at(key_id, event_ms)
    if problem is not None:
        return Check("device", False, problem[1])
    return Check(
        "device",
        True,
        f"signed by node {node_id} ({node.node_class}) with key {key.index} ({key_id[:16]}…), "
        f"valid at {event_ms} ms, in a batch of {claim['size']}; NodeRegistry {registry}",
    )


def _signed(public_key: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _json(value: Any) -> str:
    return {True: "true", False: "false", None: "null"}.get(value, repr(value))
