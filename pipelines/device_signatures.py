"""Device signatures at ingest: every report must be signed by a registered node's valid key.

Each record carries the node's envelope in its ``rda-sig`` Kafka header (``simulator/signing.py``
makes them; docs/pipeline.md, "Device signatures", is the format). Two steps around
standardization (``pipelines/graph.py``):

1. ``check_records``, before any parser runs: the envelope is parsed (bounded, strict), its node
   and key looked up in a snapshot of the NodeRegistry (``RegistrySnapshot``, from the ingest
   cache in ``streaming/node_cache.py``), the record's salted commitment and leaf recomputed, the
   audit path folded to the batch root and the node's Ed25519 signature of the batch checked —
   once per batch (cached), not once per record — and the key's validity at the envelope's
   event time. A record that fails is quarantined unread with ``unsigned``, ``unknown_node``,
   ``bad_signature`` or ``revoked_key``: unauthenticated bytes never reach an adapter.
2. ``bind``, after: every row a record yields must be the envelope's node and (where the schema
   has one) event time, else the record is ``bad_signature`` (a node vouching for another's
   data, or a re-timed report); the rows get their provenance columns (``device_signed`` and
   the per-report proof).

A topic configured ``unsigned`` (a source that cannot sign, e.g. RIPE Atlas) skips both checks
and its rows say ``device_signed = false``: marked, never silently mixed with signed rows.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.standardize import Standardized
from schemas.records import QUARANTINE_SCHEMA, quarantine_batch

REQUIRED, UNSIGNED = "required", "unsigned"
POLICIES = (REQUIRED, UNSIGNED)
REASONS = ("unsigned", "unknown_node", "bad_signature", "revoked_key")
MAX_ENVELOPE_CHARS = 4096  # a batch of 65,535 reports has a 16-hash path: ~1.4 KB
MAX_BATCH = 65_535
_LEAF_DOMAIN, _BATCH_DOMAIN = b"rda.report.v1", b"rda.batch.v1"
_ENVELOPE = re.compile(
    r"v1;(?P<node>[A-Za-z0-9._:-]{1,64});(?P<key>[0-9a-f]{64});(?P<ms>[0-9]{1,18});"
    r"(?P<nonce>[0-9a-f]{32});(?P<index>[0-9]{1,5});(?P<size>[0-9]{1,5});"
    r"(?P<path>(?:[0-9a-f]{64}){0,16});(?P<sig>[0-9a-f]{128})"
)
_PROOF_COLUMNS = (
    "device_key_id",
    "device_payload_sha256",
    "device_batch_index",
    "device_batch_size",
    "device_batch_path",
    "device_signature",
)


@dataclass(frozen=True)
class RegisteredKey:
    index: int
    public_key: bytes
    valid_from_ms: int
    valid_until_ms: int | None  # None: no end yet


@dataclass(frozen=True)
class RegisteredNode:
    node_id: str
    keys: dict[str, RegisteredKey]  # by key id (hex)
    revoked_from_ms: int | None = None


@dataclass(frozen=True)
class RegistrySnapshot:
    """The NodeRegistry's nodes as of ``block``: what one batch verifies against (a retried
    batch rebuilds the same snapshot, so it decides the same)."""

    registry: str
    block: int
    nodes: dict[str, RegisteredNode]

    def problem(self, node_id: str, key_id: str, event_ms: int) -> tuple[str, str] | None:
        """Why ``key_id`` of ``node_id`` may not sign a report of ``event_ms``; None: it may."""
        node = self.nodes.get(node_id)
        if node is None:
            return "unknown_node", f"node {node_id} is not in the node registry {self.registry}"
        if node.keys.get(key_id) is None:
            return "bad_signature", f"key {key_id[:16]}… is not a key of node {node_id}"
        return None

    def validity(self, node_id: str, key_id: str, event_ms: int) -> tuple[str, str] | None:
        """``revoked_key`` when the key (or node) could not sign at ``event_ms``."""
        node = self.nodes[node_id]
        key = node.keys[key_id]
        if node.revoked_from_ms is not None and event_ms >= node.revoked_from_ms:
            return "revoked_key", (
                f"node {node_id} is revoked from {node.revoked_from_ms} ms; the report is of "
                f"{event_ms} ms"
            )
        if event_ms < key.valid_from_ms:
            return "revoked_key", (
                f"key {key.index} of node {node_id} is valid from {key.valid_from_ms} ms; the "
                f"report is of {event_ms} ms"
            )
        if key.valid_until_ms is not None and event_ms >= key.valid_until_ms:
            return "revoked_key", (
                f"key {key.index} of node {node_id} was valid until {key.valid_until_ms} ms "
                f"(rotated or revoked); the report is of {event_ms} ms"
            )
        return None


@dataclass(frozen=True)
class Envelope:
    node_id: str
    key_id: str
    event_ms: int
    commitment: bytes
    index: int
    size: int
    path: str
    signature: str


@dataclass
class CheckedRecords:
    """``check_records``' outcome for one raw batch: refused offsets with their reasons, and the
    envelope of every record that passed (None where the topic is unsigned)."""

    refused: dict[int, tuple[str, str]]
    envelopes: list[Envelope | None]


@dataclass
class DeviceCheck:
    """Device signature checks for one batch of one topic (picklable: it travels to workers)."""

    policy: str = UNSIGNED
    snapshot: RegistrySnapshot | None = None
    topic: str = ""
    _verified: dict[tuple, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"signature policy {self.policy!r} (known: {', '.join(POLICIES)})")
        if self.policy == REQUIRED and self.snapshot is None:
            raise ValueError("required device signatures need a node registry")

    # -- 1. before standardization ---------------------------------------------------------

    def check_records(self, raw: pa.RecordBatch) -> CheckedRecords:
        if self.policy == UNSIGNED:
            return CheckedRecords({}, [None] * raw.num_rows)
        refused, envelopes = {}, []
        offsets = raw.column("offset").to_pylist()
        values = raw.column("value").to_pylist()
        headers = raw.column("signature").to_pylist()
        for offset, value, header in zip(offsets, values, headers, strict=True):
            envelope, problem = self._check(header, value or b"")
            if problem is not None:
                refused[offset] = problem
            envelopes.append(envelope)
        return CheckedRecords(refused, envelopes)

    def _check(self, header: str | None, value: bytes) -> tuple[Envelope | None, tuple | None]:
        if header is None:
            return None, ("unsigned", f"no rda-sig header: topic {self.topic} requires signatures")
        envelope = parse_envelope(header, value)
        if isinstance(envelope, str):
            return None, ("bad_signature", f"malformed rda-sig header: {envelope}")
        snapshot = self.snapshot
        assert snapshot is not None
        problem = snapshot.problem(envelope.node_id, envelope.key_id, envelope.event_ms)
        if problem is not None:
            return None, problem
        if not self._signed(envelope):
            return None, (
                "bad_signature",
                f"the signature does not verify for node {envelope.node_id}, key "
                f"{envelope.key_id[:16]}…: the report, its envelope or its batch was altered",
            )
        problem = snapshot.validity(envelope.node_id, envelope.key_id, envelope.event_ms)
        return (None, problem) if problem is not None else (envelope, None)

    def _signed(self, envelope: Envelope) -> bool:
        """The leaf folds into a root the node signed (each batch verified once)."""
        leaf = report_leaf(envelope)
        root = root_from_path(leaf, envelope.index, envelope.size, bytes.fromhex(envelope.path))
        if root is None:
            return False
        cache_key = (envelope.node_id, envelope.key_id, envelope.size, root, envelope.signature)
        known = self._verified.get(cache_key)
        if known is None:
            assert self.snapshot is not None
            key = self.snapshot.nodes[envelope.node_id].keys[envelope.key_id]
            message = batch_message(envelope.node_id, envelope.key_id, envelope.size, root)
            known = verify_ed25519(key.public_key, bytes.fromhex(envelope.signature), message)
            if len(self._verified) > 100_000:
                self._verified.clear()
            self._verified[cache_key] = known
        return known

    # -- 2. after standardization ----------------------------------------------------------

    def bind(
        self, raw: pa.RecordBatch, checked: CheckedRecords, result: Standardized
    ) -> Standardized:
        """Refuse records whose rows are not the envelope's node and time; add provenance."""
        if not raw.num_rows:
            return result
        offsets = raw.column("offset")
        columns = _envelope_columns(checked.envelopes, self.policy == REQUIRED)
        mismatched: dict[int, str] = {}
        for rows in result.published.values():
            if rows.num_rows:
                mismatched.update(_mismatches(rows, offsets, columns))
        published = {
            dataset: _with_provenance(rows, offsets, columns, set(mismatched))
            for dataset, rows in result.published.items()
        }
        if not mismatched:
            return Standardized(
                result.read, result.published_records, published, result.quarantined,
                result.suppressed, result.quality,
            )  # fmt: skip
        positions = pc.index_in(pa.array(sorted(mismatched), pa.int64()), offsets)
        moved = quarantine_batch(
            raw.take(positions),
            pa.array(["bad_signature"] * len(mismatched), pa.string()),
            pa.array([mismatched[o] for o in sorted(mismatched)], pa.string()),
        )
        table = pa.Table.from_batches([result.quarantined, moved], schema=QUARANTINE_SCHEMA)
        table = table.sort_by([("partition", "ascending"), ("offset", "ascending")])
        quarantined = table.combine_chunks().to_batches()
        return Standardized(
            read=result.read,
            published_records=result.published_records - len(mismatched),
            published=published,
            quarantined=quarantined[0] if quarantined else moved.slice(0, 0),
            suppressed=result.suppressed,
            quality=result.quality,
        )


def parse_envelope(header: str, value: bytes) -> Envelope | str:
    """The envelope of a record, or what is wrong with it (never raises)."""
    if len(header) > MAX_ENVELOPE_CHARS:
        return f"longer than {MAX_ENVELOPE_CHARS} characters"
    match = _ENVELOPE.fullmatch(header)
    if match is None:
        return "not v1;node;key id;event ms;nonce;index;size;path;signature in the documented form"
    index, size = int(match["index"]), int(match["size"])
    if not 0 <= index < size <= MAX_BATCH:
        return f"leaf {index} of a batch of {size}"
    if len(match["path"]) != 64 * path_length(index, size):
        return f"an audit path of {len(match['path']) // 64} hashes for leaf {index} of {size}"
    nonce = bytes.fromhex(match["nonce"])
    return Envelope(
        node_id=match["node"],
        key_id=match["key"],
        event_ms=int(match["ms"]),
        commitment=hashlib.sha256(nonce + value).digest(),
        index=index,
        size=size,
        path=match["path"],
        signature=match["sig"],
    )


def report_leaf(envelope: Envelope) -> bytes:
    """SHA-256(0x00 ‖ rda.report.v1 ‖ u8 length ‖ node ‖ key id ‖ i64 ms ‖ commitment)."""
    node = envelope.node_id.encode("utf-8")
    data = b"".join(
        (
            _LEAF_DOMAIN,
            bytes([len(node)]),
            node,
            bytes.fromhex(envelope.key_id),
            struct.pack(">q", envelope.event_ms),
            envelope.commitment,
        )
    )
    return hashlib.sha256(b"\x00" + data).digest()


def batch_message(node_id: str, key_id: str, size: int, root: bytes) -> bytes:
    node = node_id.encode("utf-8")
    return b"".join(
        (
            _BATCH_DOMAIN,
            bytes([len(node)]),
            node,
            bytes.fromhex(key_id),
            struct.pack(">I", size),
            root,
        )
    )


def path_length(index: int, size: int) -> int:
    """Hashes in the RFC 9162 audit path of leaf ``index`` in a tree of ``size`` leaves."""
    length, fn, sn = 0, index, size - 1
    while sn:
        if fn & 1 or fn == sn:
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        length += 1
        fn, sn = fn >> 1, sn >> 1
    return length


def root_from_path(leaf: bytes, index: int, size: int, path: bytes) -> bytes | None:
    """The root an RFC 9162 audit path folds ``leaf`` into (2.1.3.2), or None if it cannot."""
    fn, sn, r = index, size - 1, leaf
    for start in range(0, len(path), 32):
        if sn == 0:
            return None
        p = path[start : start + 32]
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _envelope_columns(envelopes: list[Envelope | None], signed: bool) -> dict[str, pa.Array]:
    """Per raw record: its envelope's node, time and proof, as Arrow arrays."""

    def column(get, typ):
        return pa.array([get(e) if e is not None else None for e in envelopes], typ)

    return {
        "_node": column(lambda e: e.node_id, pa.string()),
        "_ms": column(lambda e: e.event_ms, pa.int64()),
        "device_signed": pa.array([signed] * len(envelopes), pa.bool_()),
        "device_key_id": column(lambda e: e.key_id, pa.string()),
        "device_payload_sha256": column(lambda e: e.commitment.hex(), pa.string()),
        "device_batch_index": column(lambda e: e.index, pa.int32()),
        "device_batch_size": column(lambda e: e.size, pa.int32()),
        "device_batch_path": column(lambda e: e.path, pa.string()),
        "device_signature": column(lambda e: e.signature, pa.string()),
    }


def _mismatches(
    rows: pa.RecordBatch, offsets: pa.Array, columns: dict[str, pa.Array]
) -> dict[int, str]:
    """Offsets of signed records whose rows name another node or event time than the envelope."""
    at = pc.index_in(rows.column("source_offset"), offsets)
    node = columns["_node"].take(at)
    wrong = pc.fill_null(pc.not_equal(rows.column("node_id"), node), False)
    if "event_time" in rows.schema.names:
        micros = pc.multiply(columns["_ms"].take(at), 1000)
        times = rows.column("event_time").cast(pa.int64())
        wrong = pc.or_(wrong, pc.fill_null(pc.not_equal(times, micros), False))
    found = {}
    for i in pc.indices_nonzero(wrong).to_pylist():
        offset = rows.column("source_offset")[i].as_py()
        found.setdefault(
            offset,
            f"signed by node {node[i].as_py()} for {columns['_ms'].take(at)[i].as_py()} ms, but "
            f"the report is of node {rows.column('node_id')[i].as_py()} at "
            f"{_ms_of(rows, i)}: a node signs only its own reports, at their own time",
        )
    return found


def _ms_of(rows: pa.RecordBatch, i: int) -> str:
    if "event_time" not in rows.schema.names:
        return "its own time"
    micros = rows.column("event_time").cast(pa.int64())[i].as_py()
    return "no time" if micros is None else f"{micros // 1000} ms"


def _with_provenance(
    rows: pa.RecordBatch, offsets: pa.Array, columns: dict[str, pa.Array], refused: set[int]
) -> pa.RecordBatch:
    """``rows`` without the refused records', with their device columns filled in."""
    if refused:
        keep = pc.invert(pc.is_in(rows.column("source_offset"), pa.array(sorted(refused))))
        rows = rows.filter(keep)
    names = rows.schema.names
    if "device_signed" not in names:
        return rows
    at = pc.index_in(rows.column("source_offset"), offsets)
    arrays = []
    for position, name in enumerate(names):
        if name == "device_signed" or name in _PROOF_COLUMNS:
            arrays.append(columns[name].take(at).cast(rows.schema.field(name).type))
        else:
            arrays.append(rows.column(position))
    return pa.RecordBatch.from_arrays(arrays, schema=rows.schema)
