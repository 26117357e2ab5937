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

import functools
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.device_envelopes import Envelopes, verify_envelopes
from pipelines.standardize import Standardized, with_quarantined
from schemas.fields import DEVICE_PROOF_FIELDS
from schemas.registry import schema_for_dataset

REQUIRED, UNSIGNED = "required", "unsigned"
POLICIES = (REQUIRED, UNSIGNED)
REASONS = ("unsigned", "unknown_node", "bad_signature", "revoked_key")
_PROOF_COLUMNS = tuple(f.name for f in DEVICE_PROOF_FIELDS)


@dataclass(frozen=True)
class RegisteredKey:
    index: int
    public_key: bytes
    valid_from_ms: int
    valid_until_ms: int | None  # None: no end yet
    # A point of small order (``proofs/ed25519_points.py``): any signature verifies under it.
    small_order: bool = False


def small_order_reason(node_id: str, key_id: str) -> str:
    return (
        f"key {key_id[:16]}… of node {node_id} is an Ed25519 point of small order: any "
        "signature verifies under it, so it vouches for nothing"
    )


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

    def public_key(self, node_id: str, key_id: str) -> bytes | tuple[str, str]:
        """The key's raw public key, or why there is none (``unknown_node``, ``bad_signature``)."""
        node = self.nodes.get(node_id)
        if node is None:
            return "unknown_node", f"node {node_id} is not in the node registry {self.registry}"
        key = node.keys.get(key_id)
        if key is None:
            return "bad_signature", f"key {key_id[:16]}… is not a key of node {node_id}"
        if key.small_order:
            return "bad_signature", small_order_reason(node_id, key_id)
        return key.public_key

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

    def check_records(self, raw: pa.RecordBatch) -> Envelopes | None:
        """Refused offsets and the verified envelopes; None when the topic is unsigned."""
        if self.policy == UNSIGNED:
            return None
        snapshot = self.snapshot
        assert snapshot is not None
        return verify_envelopes(
            raw, snapshot.public_key, snapshot.validity, self._verified, self.topic
        )

    # -- 2. after standardization ----------------------------------------------------------

    def bind(
        self, raw: pa.RecordBatch, checked: Envelopes | None, result: Standardized
    ) -> Standardized:
        """Refuse records whose rows are not the envelope's node and time; add provenance."""
        if not raw.num_rows:
            return result
        offsets = raw.column("offset")
        columns = _provenance_columns(checked, raw.num_rows)
        mismatched: dict[int, str] = {}
        for dataset, rows in result.published.items():
            if rows.num_rows and checked is not None:
                mismatched.update(_mismatches(rows, offsets, columns, dataset))
        published = {
            dataset: _with_provenance(rows, offsets, columns, set(mismatched))
            for dataset, rows in result.published.items()
        }
        if not mismatched:
            return Standardized(
                result.read, result.published_records, published, result.quarantined,
                result.suppressed, result.quality,
            )  # fmt: skip
        refused = sorted(mismatched)
        quarantined = with_quarantined(
            raw,
            result.quarantined,
            pa.array(refused, pa.int64()),
            pa.array(["bad_signature"] * len(refused), pa.string()),
            pa.array([mismatched[o] for o in refused], pa.string()),
        )
        return Standardized(
            read=result.read,
            published_records=result.published_records - len(mismatched),
            published=published,
            quarantined=quarantined,
            suppressed=result.suppressed,
            quality=result.quality,
        )


def _provenance_columns(checked: Envelopes | None, n: int) -> dict[str, pa.Array]:
    """Per raw record: device_signed, and the envelope's fields (all null when unsigned)."""
    if checked is None:
        nulls = {
            "_node": pa.string(), "_ms": pa.int64(), "device_key_id": pa.string(),
            "device_payload_sha256": pa.string(), "device_batch_index": pa.int64(),
            "device_batch_size": pa.int64(), "device_batch_path": pa.string(),
            "device_signature": pa.string(),
        }  # fmt: skip
        columns = {name: pa.nulls(n, typ) for name, typ in nulls.items()}
    else:
        columns = dict(checked.columns)
    columns["device_signed"] = pa.array([checked is not None] * n, pa.bool_())
    return columns


@functools.cache
def _node_optional(dataset: str) -> bool:
    """Whether ``dataset``'s rows may lack a node (speed_test v2: third-party tests)."""
    schema = schema_for_dataset(dataset)
    return not any(f.name == "node_id" and f.required for f in schema.fields)


@functools.cache
def _time_field(dataset: str) -> str | None:
    """The column of ``dataset``'s rows the envelope's event time binds: ``event_time`` (equal
    to it), else ``session_end`` (a session is reported once over: not after it); None."""
    names = {f.name for f in schema_for_dataset(dataset).all_fields}
    return next((name for name in ("event_time", "session_end") if name in names), None)


def _time_mismatch(rows: pa.RecordBatch, ms: pa.Array, field: str | None) -> pa.Array:
    """Per row, whether its time is not what the envelope's ``ms`` vouches for. Compared in
    milliseconds, the row's divided: ``ms`` (up to 18 digits) times 1000 wraps around int64,
    and a wrapped product matched a row dated when the key was not valid."""
    if field is None:
        return pa.repeat(pa.scalar(False), rows.num_rows)
    micros = rows.column(field).cast(pa.int64())
    whole = pc.divide(micros, 1000)  # the rows' times are sane: checked before this
    if field == "event_time":
        part = pc.subtract(micros, pc.multiply(whole, 1000))
        wrong = pc.or_(pc.not_equal(part, 0), pc.not_equal(whole, ms))
    else:  # the first whole millisecond at or after the session's end
        ceiling = pc.add(whole, pc.cast(pc.greater(micros, pc.multiply(whole, 1000)), pa.int64()))
        wrong = pc.greater(ceiling, ms)
    return pc.fill_null(wrong, False)


def _mismatches(
    rows: pa.RecordBatch, offsets: pa.Array, columns: dict[str, pa.Array], dataset: str
) -> dict[int, str]:
    """Offsets of signed records whose rows name another node or event time than the envelope
    (a session: one that ends after it).

    A row without a node is refused too where its schema lets it lack one: published, it would
    carry a device proof that binds it to no node. (Where a node is required, the quality check
    names the defect: ``missing_required``.)"""
    at = pc.index_in(rows.column("source_offset"), offsets)
    node = columns["_node"].take(at)
    if "node_id" not in rows.schema.names:
        named = pa.nulls(rows.num_rows, pa.string())
    else:
        named = rows.column("node_id")
    wrong = pc.fill_null(pc.not_equal(named, node), _node_optional(dataset))
    field = _time_field(dataset)
    wrong = pc.or_(wrong, _time_mismatch(rows, columns["_ms"].take(at), field))
    found = {}
    for i in pc.indices_nonzero(wrong).to_pylist():
        offset = rows.column("source_offset")[i].as_py()
        whose = "no node" if named[i].as_py() is None else f"node {named[i].as_py()}"
        found.setdefault(
            offset,
            f"signed by node {node[i].as_py()} for {columns['_ms'].take(at)[i].as_py()} ms, but "
            f"the report is of {whose} {_time_of(rows, i, field)}: a node signs only its own "
            "reports, at their own time",
        )
    return found


def _time_of(rows: pa.RecordBatch, i: int, field: str | None) -> str:
    if field is None:
        return "at its own time"
    micros = rows.column(field).cast(pa.int64())[i].as_py()
    when = "no time" if micros is None else f"{micros / 1000:.0f} ms"
    return f"at {when}" if field == "event_time" else f"with a session ending at {when}"


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
