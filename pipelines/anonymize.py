"""Privacy by schema: canonical rows in, published rows out, as each field's privacy class says.

| class | transform |
|---|---|
| identifier | HMAC-SHA256 pseudonym (128 bits, hex), epoch key; an IMEI may keep its TAC |
| network_address | truncated to /24 (IPv4) or /48 (IPv6), or a pseudonym if the schema says so |
| precise_location | latitude/longitude → the H3 cell at the configured resolution |
| coarsened timestamp | floored to the schema's unit (e.g. 1 h) |
| quasi_identifier | k-anonymity: small groups generalized (timestamps to a day), then suppressed |

Keyed work is done once per distinct value and epoch, never per row: a batch holds far fewer
subscribers, addresses and sites than rows, and everything else is ``pyarrow.compute``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.k_anonymity import floor_to, k_anonymous, person_field
from pipelines.keyed_hashes import hex_prefixes, hmac_sha256_many
from schemas.model import Field, Privacy, TelemetrySchema
from schemas.published import (
    EPOCH_FIELD,
    FLAGS_FIELD,
    H3_FIELD,
    PSEUDONYM_HEX_CHARS,
    ROW_KEY_FIELD,
    PrivacySettings,
    has_identifiers,
    lineage_coarsening,
    needs_row_key,
    published_schema,
)
from validators.quality import event_time_field

KEY_ENV = "RDA_PSEUDONYM_KEY"


class PseudonymKeyError(ValueError):
    """The pseudonym key is unusable (a user's configuration mistake)."""


@dataclass(frozen=True)
class PseudonymKey:
    """The master secret; each epoch's key is derived from it, so keys rotate by epoch."""

    secret: bytes

    @property
    def key_id(self) -> str:
        """Names the key in manifests without revealing it."""
        return hashlib.sha256(b"rda-key-id:" + self.secret).hexdigest()[:16]

    def epoch_key(self, epoch: int) -> bytes:
        return hmac.new(self.secret, f"rda-pseudonym-epoch:{epoch}".encode(), "sha256").digest()

    def ledger_key(self) -> bytes:
        """Keys the private DP budget ledger: one subscriber, one entry across epochs."""
        return hmac.new(self.secret, b"rda-dp-ledger", "sha256").digest()

    @classmethod
    def load(cls, private_dir: Path) -> PseudonymKey:
        """From ``$RDA_PSEUDONYM_KEY`` (hex), else ``<private>/keys/pseudonym.key``, made once."""
        text = os.environ.get(KEY_ENV)
        origin = f"${KEY_ENV}"
        if not text:
            path = private_dir / "keys" / "pseudonym.key"
            origin = str(path)
            if not path.exists():
                _create_key_file(path)
            text = path.read_text()
        try:
            secret = bytes.fromhex(text.strip())
        except ValueError:
            raise PseudonymKeyError(f"the pseudonym key in {origin} is not hexadecimal") from None
        if len(secret) < 16:
            raise PseudonymKeyError(f"the pseudonym key in {origin} is shorter than 128 bits")
        return cls(secret)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(partial, path)  # first writer wins: concurrent workers agree on one key
    except FileExistsError:
        pass
    finally:
        partial.unlink()


@dataclass(frozen=True)
class Anonymized:
    rows: pa.RecordBatch  # in the published schema
    suppressed_offsets: pa.Int64Array  # source offsets of rows withheld for k-anonymity
    epochs: tuple[int, ...]


def anonymize(
    schema: TelemetrySchema,
    rows: pa.RecordBatch,
    flags: pa.Array,
    key: PseudonymKey,
    settings: PrivacySettings,
    k_anonymity: bool = True,
) -> Anonymized:
    """Apply ``schema``'s privacy policy to canonical ``rows`` (with their quality flags).

    ``k_anonymity=False``: every per-row transform, but no group decision (the streaming driver
    takes it per closed event-time window, ``k_anonymize``).
    """
    target = published_schema(schema, settings)
    epochs = _epochs(schema, rows, settings)
    columns: dict[str, pa.Array] = {}
    for f in schema.all_fields:
        columns.update(_transform(f, rows, epochs, key, settings))
    if has_identifiers(schema):
        columns[EPOCH_FIELD] = epochs
    if needs_row_key(schema):
        columns[ROW_KEY_FIELD] = _row_keys(schema, rows, epochs, key)
    columns[FLAGS_FIELD] = flags
    unit = lineage_coarsening(schema)
    if unit:  # a precise ingest time would give the coarsened event times away
        columns["ingest_time"] = floor_to(columns["ingest_time"], unit)
    n = rows.num_rows
    keep = pa.repeat(pa.scalar(True), n)
    if k_anonymity:
        person = person_field(schema)
        people = rows.column(person) if person is not None else None
        keep = k_anonymous(schema, columns, settings, people)
    published = pa.RecordBatch.from_arrays(
        [columns[f.name].cast(f.type) for f in target.all_fields], schema=target.arrow_schema()
    )
    suppressed = pc.filter(rows.column("source_offset"), pc.invert(keep))
    return Anonymized(
        rows=published.filter(keep),
        suppressed_offsets=suppressed.cast(pa.int64()),
        epochs=tuple(sorted(pc.unique(pc.filter(epochs, keep)).to_pylist())),
    )


def _transform(
    f: Field, rows: pa.RecordBatch, epochs: pa.Array, key: PseudonymKey, settings: PrivacySettings
) -> dict[str, pa.Array]:
    values = rows.column(f.name)
    if f.privacy is Privacy.IDENTIFIER:
        return {f.name: _pseudonyms(values, epochs, key, f.keep_prefix or 0)}
    if f.privacy is Privacy.NETWORK_ADDRESS:
        if f.address == "pseudonym":
            return {f.name: _pseudonyms(values, epochs, key, 0)}
        return {f.name: _truncated_addresses(values)}
    if f.privacy is Privacy.PRECISE_LOCATION:
        if f.name != "latitude":
            return {}
        return {H3_FIELD: _h3_cells(values, rows.column("longitude"), settings.h3_resolution)}
    if f.coarsen:
        return {f.name: floor_to(values, f.coarsen)}
    return {f.name: values}


def _epochs(schema: TelemetrySchema, rows: pa.RecordBatch, settings: PrivacySettings) -> pa.Array:
    """Each row's key epoch, from its natural-key time (else its event time)."""
    times = [k for k in schema.natural_key if pa.types.is_timestamp(schema.field(k).type)] or [
        event_time_field(schema)
    ]
    micros = rows.column(times[0]).cast(pa.int64())
    return pc.divide(micros, settings.epoch_seconds * 1_000_000)


def _pseudonyms(values: pa.Array, epochs: pa.Array, key: PseudonymKey, keep: int) -> pa.Array:
    """HMAC-SHA256 of each value under its epoch's key, computed once per distinct pair."""
    result = pa.nulls(len(values), pa.string())
    for epoch in pc.unique(epochs).to_pylist():
        mine = pc.equal(epochs, epoch)
        epoch_key = key.epoch_key(epoch)

        def pseudonyms(distinct: pa.Array, k: bytes = epoch_key) -> pa.Array:
            digests = hex_prefixes(hmac_sha256_many(k, _utf8(distinct)), PSEUDONYM_HEX_CHARS)
            if not keep:
                return digests
            return pc.binary_join_element_wise(
                pc.utf8_slice_codeunits(distinct, 0, keep), digests, "-"
            )

        mapped = _per_distinct_array(pc.filter(values, mine), pseudonyms)
        result = pc.replace_with_mask(result, mine, mapped)
    return result


def _per_distinct(values: pa.Array, transform: Callable[[str], str | None]) -> pa.Array:
    """``transform`` applied to each distinct non-null value once, then mapped back."""
    return _per_distinct_array(
        values, lambda distinct: pa.array([transform(v) for v in distinct.to_pylist()], pa.string())
    )


def _per_distinct_array(values: pa.Array, transform: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``transform`` of the array of distinct non-null values, mapped back to every row."""
    distinct = pc.drop_null(pc.unique(values))
    return pc.take(transform(distinct), pc.index_in(values, value_set=distinct))


def _utf8(texts: pa.Array) -> list[bytes]:
    """Each string's UTF-8 bytes (what ``str.encode`` gives), without a call per value."""
    return texts.cast(pa.binary()).to_pylist()


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
_GROUP = r"0*[1-9a-fA-F][0-9a-fA-F]{0,3}"  # a non-zero IPv6 group of 1-4 hex digits
_IPV6_HEAD = rf"^(?P<a>{_GROUP}):(?P<b>{_GROUP}):(?P<c>{_GROUP})(?::[0-9a-fA-F]{{0,4}}){{1,5}}$"


def _truncated_addresses(values: pa.Array) -> pa.Array:
    """/24 for IPv4 and /48 for IPv6, rewritten vectorized where the text allows it.

    IPv6 addresses whose first three groups are written out and non-zero are rewritten directly
    (their /48 prints as ``g1:g2:g3::/48``); other forms (``::`` early, zero groups, invalid)
    go through ``ipaddress`` once per distinct value.
    """
    v4 = pc.fill_null(pc.match_substring_regex(values, _IPV4), False)
    v6 = pc.fill_null(pc.match_substring_regex(values, _IPV6_HEAD), False)
    fast = pc.or_(pc.or_(v4, v6), pc.is_null(values))
    result = pc.replace_substring_regex(values, _IPV4, r"\1.\2.\3.0/24")
    if pc.any(v6).as_py():
        head = pc.extract_regex(pc.if_else(v6, values, pa.scalar(None, pa.string())), _IPV6_HEAD)
        groups = [pc.utf8_lower(pc.utf8_ltrim(pc.struct_field(head, g), "0")) for g in "abc"]
        as_v6 = pc.binary_join_element_wise(*groups, ":/48", ":")  # g1:g2:g3::/48
        result = pc.if_else(v6, as_v6, result)
    if pc.all(fast).as_py():
        return result
    others = pc.if_else(fast, pa.scalar(None, pa.string()), values)
    return pc.if_else(fast, result, _per_distinct(others, _truncate_address))


def _truncate_address(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None  # the quality checks quarantine malformed addresses before this
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _h3_cells(lat: pa.Array, lon: pa.Array, resolution: int) -> pa.Array:
    pairs = pc.binary_join_element_wise(pc.cast(lat, pa.string()), pc.cast(lon, pa.string()), ",")

    def cell(pair: str) -> str:
        la, lo = pair.split(",")
        return h3.latlng_to_cell(float(la), float(lo), resolution)

    return _per_distinct(pairs, cell)


def _row_keys(
    schema: TelemetrySchema, rows: pa.RecordBatch, epochs: pa.Array, key: PseudonymKey
) -> pa.Array:
    """A keyed pseudonym of the canonical natural key: unique per row, links nothing."""
    parts = []
    for name in schema.natural_key:
        column = rows.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        parts.append(pc.cast(column, pa.string()))
    joined = pc.binary_join_element_wise(*parts, "|")
    result = pa.nulls(len(joined), pa.string())
    for epoch in pc.unique(epochs).to_pylist():
        mine = pc.equal(epochs, epoch)
        k = key.epoch_key(epoch)
        texts = _utf8(pc.filter(joined, mine))
        # Keyed BLAKE2b (a MAC by design) here: one per row, cheaper than HMAC-SHA256 even with
        # its keyed states made once (1.3 against 1.9 µs a row).
        digests = [hashlib.blake2b(t, key=k, digest_size=16).digest() for t in texts]
        result = pc.replace_with_mask(result, mine, hex_prefixes(digests, 32))
    return result


def k_anonymize(
    schema: TelemetrySchema,
    rows: pa.Table,
    settings: PrivacySettings,
    people: pa.Array | None = None,
) -> tuple[pa.Table, pa.Array]:
    """Published rows of one release, small quasi-identifier groups generalized; and per row
    whether it may be published (False: still in a group below k people, to be withheld).
    ``people``: who each row is about (``pipelines/k_anonymity.py``)."""
    columns = {name: rows.column(name).combine_chunks() for name in rows.column_names}
    keep = k_anonymous(schema, columns, settings, people)
    generalized = pa.Table.from_arrays([columns[n] for n in rows.column_names], schema=rows.schema)
    return generalized, keep


def subscriber_keys(values: pa.Array, key: PseudonymKey) -> pa.Array:
    """A keyed hash of each subscriber identifier, the same in every epoch (private only)."""
    ledger = key.ledger_key()
    return _per_distinct_array(
        values, lambda distinct: hex_prefixes(hmac_sha256_many(ledger, _utf8(distinct)), 32)
    )


def concealed_offsets(
    partitions: pa.Array, offsets: pa.Array, epochs: pa.Array, key: PseudonymKey
) -> pa.Array:
    """A keyed pseudonym of each row's Kafka offset (53 bits, under its epoch's key, as its other
    pseudonyms: a leaf's integers are I-JSON's), the same for a redone release and ordered as
    nothing in the stream is. Not a key: two records may share one (the row key is the
    published natural key).

    A released session's exact offset would date it: its neighbours in the partition are
    published node reports with exact times, which undoes the session's coarsened times."""
    texts = pc.binary_join_element_wise(
        pa.scalar("rda-source-offset"), pc.cast(partitions, pa.string()),
        pc.cast(offsets, pa.string()), "|",
    )  # fmt: skip
    result = np.zeros(len(texts), np.uint64)
    for epoch in pc.unique(epochs).to_pylist():
        mine = np.asarray(pc.fill_null(pc.equal(epochs, epoch), False), bool)
        k = key.epoch_key(epoch)
        digests = b"".join(
            hashlib.blake2b(t, key=k, digest_size=8).digest()
            for t in _utf8(pc.filter(texts, pa.array(mine)))
        )
        result[mine] = np.frombuffer(digests, ">u8") >> np.uint64(11)
    return pa.array(result.astype(np.int64), pa.int64())
