"""Shapes of records before and beside the canonical schemas: raw Kafka records and rejects."""

from __future__ import annotations

import pyarrow as pa

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
