"""Shapes of records before and beside the canonical schemas: raw Kafka records and rejects."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# One Kafka record as read from the broker. ``value`` is null for a tombstone.
RAW_RECORD_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp_ms", pa.int64(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("format", pa.string()),  # the producer's format header, if any
        pa.field("signature", pa.string()),  # the node's rda-sig header (device signature), if any
    ]
)
SIGNATURE_HEADER = "rda-sig"

# A record that could not be published, kept whole with the reason. This store is private:
# the raw bytes may hold anything the producer sent, so it is never published.
QUARANTINE_SCHEMA = pa.schema(
    [
        *RAW_RECORD_SCHEMA,
        pa.field("reason_code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)


def quarantine_batch(raw: pa.RecordBatch, codes: pa.Array, reasons: pa.Array) -> pa.RecordBatch:
    """Rejects for every row of ``raw``, with one reason code and message per row."""
    columns = [raw.column(name) for name in RAW_RECORD_SCHEMA.names]
    return pa.RecordBatch.from_arrays([*columns, codes, reasons], schema=QUARANTINE_SCHEMA)


def empty_quarantine() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=QUARANTINE_SCHEMA)


ECHOED_CHARACTERS = 60  # of a record's value a reason quotes: enough to see it, not the record


def echoed_text(text: str, limit: int = ECHOED_CHARACTERS) -> str:
    """One value as a reason quotes it: cut at ``limit`` characters with ``…`` (``echoed``, for
    a value written record by record)."""
    return text if len(text) <= limit else text[:limit] + "…"


def echoed(values: pa.Array, limit: int = ECHOED_CHARACTERS) -> pa.Array:
    """Values as a reason quotes them: text, ``null`` for none, cut at ``limit`` characters
    with ``…`` (a 900 KB field was quoted whole in its reason, beside the record that holds
    it, and printed whole by ``rda quarantine show``)."""
    text = pc.fill_null(pc.cast(values, pa.string()), "null")
    long = pc.greater(pc.utf8_length(text), limit)
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, limit), "…", "")
    return pc.if_else(long, cut, text)


MAX_REASON_CHARACTERS = 300  # a reason says why in a line: what it quotes of the record is cut


def bounded_reason(reason: str) -> str:
    """A reason written record by record, cut at ``MAX_REASON_CHARACTERS`` with ``…``."""
    if len(reason) <= MAX_REASON_CHARACTERS:
        return reason
    return reason[: MAX_REASON_CHARACTERS - 1] + "…"
