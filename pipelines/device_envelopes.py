"""Checking the ``rda-sig`` envelopes of a raw batch, one signed batch of a node at a time.

The per-record work is what cannot be shared: the salted commitment to the record's bytes and
its leaf (two SHA-256). Everything else is per *signed batch*: the envelopes are parsed and
validated by Arrow (one RE2 match and a split over the whole column), records are grouped by
the batch they claim (node, key, size, signature), and a batch whose every leaf is present is
rebuilt from its leaves — one hash per leaf, the root, each record's audit path compared with
the one its envelope carries — and its signature checked once. A batch split across chunks, or
one with a leaf that does not fit, is checked record by record (each path folded to a root, each
root's signature checked once), so one forged record never takes its batch's genuine records
with it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

MAX_ENVELOPE_CHARS = 4096  # a batch of 65,535 reports has a 16-hash path: ~1.4 KB
MAX_BATCH = 65_535
LEAF_DOMAIN, BATCH_DOMAIN = b"rda.report.v1", b"rda.batch.v1"
# Everything but the audit path, which is only ever compared with (or folded into) the path
# the batch's leaves give: a path that is not that one is refused, whatever characters it holds.
ENVELOPE_PATTERN = (
    r"^v1;[A-Za-z0-9._:-]{1,64};[0-9a-f]{64};[0-9]{1,18};[0-9a-f]{32};[0-9]{1,5};[0-9]{1,5};"
)
SIGNATURE_PATTERN = r"^[0-9a-f]{128}$"
_FIELDS = ("node", "key", "ms", "nonce", "index", "size", "path", "sig")
Problem = tuple[str, str]
# (public key of the claimed node's key, or a problem) for (node id, key id)
KeyLookup = Callable[[str, str], "bytes | Problem"]
# a problem when the key (or node) could not sign at that event time
Validity = Callable[[str, str, int], "Problem | None"]


@dataclass
class Envelopes:
    """One raw batch's envelopes: refused offsets with their reasons, and per record (Arrow
    arrays as long as the batch, null where no verified envelope) the fields bind needs."""

    refused: dict[int, Problem]
    columns: dict[str, pa.Array]


def verify_envelopes(
    raw: pa.RecordBatch,
    public_key: KeyLookup,
    validity: Validity,
    verified: dict[tuple, bool],
    topic: str,
) -> Envelopes:
    """Every record's envelope checked (``verified`` caches batch signatures across chunks)."""
    header = raw.column("signature")
    offsets = raw.column("offset").to_pylist()
    refused: dict[int, Problem] = {}
    for i in pc.indices_nonzero(pc.is_null(header)).to_pylist():
        refused[offsets[i]] = ("unsigned", f"no rda-sig header: topic {topic} requires signatures")
    well_formed = _well_formed(header)
    for i in pc.indices_nonzero(pc.and_(pc.is_valid(header), pc.invert(well_formed))).to_pylist():
        refused[offsets[i]] = (
            "bad_signature",
            "malformed rda-sig header: not v1;node;key id;event ms;nonce;index;size;path;"
            "signature in the documented form",
        )
    rows = pc.indices_nonzero(well_formed)
    parts = pc.split_pattern(header.take(rows), ";")
    arrays = {name: pc.list_element(parts, i + 1) for i, name in enumerate(_FIELDS)}
    for name in ("ms", "index", "size"):
        arrays[name] = arrays[name].cast(pa.int64())
    fields = {name: array.to_pylist() for name, array in arrays.items()}
    values = raw.column("value").take(rows).to_pylist()
    sha = hashlib.sha256
    fields["commitment"] = [
        sha(bytes.fromhex(nonce) + (value or b"")).digest()
        for nonce, value in zip(fields["nonce"], values, strict=True)
    ]
    checker = _BatchChecker(fields, public_key, validity, verified)
    positions = rows.to_pylist()
    for j, problem in checker.problems().items():
        refused[offsets[positions[j]]] = problem
    where = [None] * raw.num_rows
    for j, position in enumerate(positions):
        where[position] = j
    take = pa.array(where, pa.int64())
    commitments = pa.array([c.hex() for c in fields["commitment"]], pa.string())
    columns = {
        "_node": arrays["node"].take(take),
        "_ms": arrays["ms"].take(take),
        "device_key_id": arrays["key"].take(take),
        "device_payload_sha256": commitments.take(take),
        "device_batch_index": arrays["index"].take(take),
        "device_batch_size": arrays["size"].take(take),
        "device_batch_path": arrays["path"].take(take),
        "device_signature": arrays["sig"].take(take),
    }
    return Envelopes(refused, columns)


def _well_formed(header: pa.Array) -> pa.Array:
    """Per record: the envelope has the documented form (its path aside, see above)."""
    short = pc.less_equal(pc.utf8_length(header), MAX_ENVELOPE_CHARS)
    safe = pc.if_else(short, header, "")  # a huge header is not split
    parts = pc.split_pattern(safe, ";")
    nine = pc.equal(pc.list_value_length(parts), 9)
    last = pc.list_element(pc.if_else(nine, parts, pa.scalar([""] * 9, parts.type)), 8)
    form = pc.and_(
        pc.and_(nine, pc.match_substring_regex(safe, ENVELOPE_PATTERN)),
        pc.match_substring_regex(last, SIGNATURE_PATTERN),
    )
    return pc.fill_null(pc.and_(short, form), False)


@dataclass
class _BatchChecker:
    fields: dict[str, list]
    public_key: KeyLookup
    validity: Validity
    verified: dict[tuple, bool]

    def problems(self) -> dict[int, Problem]:
        f = self.fields
        batches: dict[tuple, list[int]] = {}
        for j, claim in enumerate(zip(f["node"], f["key"], f["size"], f["sig"], strict=True)):
            batches.setdefault(claim, []).append(j)
        found: dict[int, Problem] = {}
        for (node, key, size, signature), members in batches.items():
            found.update(self._batch(node, key, size, signature, members))
        return found

    def _batch(self, node: str, key: str, size: int, sig: str, members: list[int]) -> dict:
        looked_up = self.public_key(node, key)
        if isinstance(looked_up, tuple):
            return dict.fromkeys(members, looked_up)
        f = self.fields
        problems: dict[int, Problem] = {}
        fitting = []
        for j in members:
            index = f["index"][j]
            if 0 <= index < size <= MAX_BATCH:
                fitting.append(j)
            else:
                problems[j] = ("bad_signature", f"malformed rda-sig header: leaf {index} of {size}")
        if not fitting:  # e.g. a claimed batch of none: no tree to rebuild
            return problems
        prefix = leaf_prefix(node, key)
        leaves = {j: leaf_hash(prefix, f["ms"][j], f["commitment"][j]) for j in fitting}
        signed = self._complete(node, key, size, sig, fitting, leaves, looked_up)
        if signed is None:  # not all there, or something does not fit: record by record
            signed = self._each(node, key, size, sig, fitting, leaves, looked_up)
        good = []
        for j in fitting:
            if signed.get(j, False):
                good.append(j)
            else:
                problems[j] = (
                    "bad_signature",
                    f"the signature does not verify for node {node}, key {key[:16]}…: the report, "
                    "its envelope or its batch was altered",
                )
        times = [f["ms"][j] for j in good]
        # A key (and a node) is valid over one interval of event time: when the earliest and
        # the latest report fit, every report between them does.
        if times and (self.validity(node, key, min(times)) or self.validity(node, key, max(times))):
            for j in good:
                problem = self.validity(node, key, f["ms"][j])
                if problem is not None:
                    problems[j] = problem
        return problems

    def _complete(
        self, node: str, key: str, size: int, sig: str, members: list[int], leaves: dict,
        public_key: bytes,
    ) -> dict[int, bool] | None:  # fmt: skip
        """A batch whose every leaf is here once: rebuilt, each path compared, signed once."""
        indices = {self.fields["index"][j]: j for j in members}
        if len(members) != size or len(indices) != size:
            return None
        levels = _levels([leaves[indices[i]] for i in range(size)])
        if not self._signature(node, key, size, sig, levels[-1][0], public_key):
            return None
        paths = _paths_hex(levels)
        index, path = self.fields["index"], self.fields["path"]
        return {j: paths[index[j]] == path[j] for j in members}

    def _each(
        self, node: str, key: str, size: int, sig: str, members: list[int], leaves: dict,
        public_key: bytes,
    ) -> dict[int, bool]:  # fmt: skip
        f = self.fields
        signed = {}
        for j in members:
            path, index = f["path"][j], f["index"][j]
            if len(path) != 64 * path_length(index, size) or not _is_hex(path):
                signed[j] = False
                continue
            root = root_from_path(leaves[j], index, size, bytes.fromhex(path))
            signed[j] = root is not None and self._signature(node, key, size, sig, root, public_key)
        return signed

    def _signature(
        self, node: str, key: str, size: int, sig: str, root: bytes, public_key: bytes
    ) -> bool:
        cache_key = (node, key, size, root, sig)
        known = self.verified.get(cache_key)
        if known is None:
            message = batch_message(node, key, size, root)
            known = verify_ed25519(public_key, bytes.fromhex(sig), message)
            if len(self.verified) > 100_000:
                self.verified.clear()
            self.verified[cache_key] = known
        return known


def leaf_prefix(node_id: str, key_id: str) -> bytes:
    """0x00 ‖ rda.report.v1 ‖ u8 length ‖ node id ‖ key id: what every leaf of a key starts with."""
    node = node_id.encode("utf-8")
    return b"\x00" + LEAF_DOMAIN + bytes([len(node)]) + node + bytes.fromhex(key_id)


def leaf_hash(prefix: bytes, event_ms: int, commitment: bytes) -> bytes:
    """SHA-256(0x00 ‖ rda.report.v1 ‖ u8 length ‖ node ‖ key id ‖ i64 ms ‖ commitment)."""
    return hashlib.sha256(prefix + struct.pack(">q", event_ms) + commitment).digest()


def batch_message(node_id: str, key_id: str, size: int, root: bytes) -> bytes:
    node = node_id.encode("utf-8")
    key = bytes.fromhex(key_id)
    return b"".join((BATCH_DOMAIN, bytes([len(node)]), node, key, struct.pack(">I", size), root))


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


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """The tree's levels, leaves first; an odd last node is carried up unchanged, which is
    RFC 9162's split at the largest power of two below the size."""
    levels = [leaves]
    sha = hashlib.sha256
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [
            sha(b"\x01" + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)
        ]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    return levels


def _paths_hex(levels: list[list[bytes]]) -> list[str]:
    """Every leaf's audit path in hex (the siblings from the leaf up; a node carried up has none
    on its level), built from the root down: a node's path is its sibling, then its parent's."""
    above = [""]  # the root's path
    for level in reversed(levels[:-1]):
        texts = [node.hex() for node in level]
        count = len(level)
        above = [(texts[i ^ 1] if i ^ 1 < count else "") + above[i >> 1] for i in range(count)]
    return above


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
