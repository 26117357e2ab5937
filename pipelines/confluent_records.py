"""confluent-kafka messages as raw Arrow batches (``schemas/records.RAW_RECORD_SCHEMA``): the
hot path of every landing, a Python call per message and column, not a row of appends."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipelines.kafka_source import FORMAT_HEADER, OffsetRange
from schemas.records import RAW_RECORD_SCHEMA, SIGNATURE_HEADER


def raw_batch(offsets: OffsetRange, messages: list[Any]) -> pa.RecordBatch:
    """The messages of one range as a raw Arrow batch, a column at a time (a Python call per
    message and column, not a row of appends: this is the hot path of every landing)."""
    formats, signatures = _wanted_headers([m.headers() for m in messages])
    columns = {
        "topic": pa.repeat(offsets.topic, len(messages)).cast(pa.string()),
        "partition": pa.repeat(offsets.partition, len(messages)).cast(pa.int32()),
        "offset": [message.offset() for message in messages],
        "timestamp_ms": [message.timestamp()[1] for message in messages],
        "key": [message.key() for message in messages],
        "value": [message.value() for message in messages],
        "format": formats,
        "signature": signatures,
    }
    return pa.RecordBatch.from_pydict(columns, schema=RAW_RECORD_SCHEMA)


def _wanted_headers(
    all_headers: list[list[tuple[str, bytes | None]] | None],
) -> tuple[pa.Array, pa.Array]:
    """Each message's format and signature headers (the first of a repeated one, as
    ``first_headers`` takes it) as text, null where it has none: one pass over the headers."""
    formats: list[bytes | None] = []
    signatures: list[bytes | None] = []
    for headers in all_headers:
        found_format = found_signature = None
        for name, value in reversed(headers or ()):  # the first of a name is kept last
            if name == FORMAT_HEADER:
                found_format = value
            elif name == SIGNATURE_HEADER:
                found_signature = value
        formats.append(found_format)
        signatures.append(found_signature)
    return _as_text(formats), _as_text(signatures)


def _as_text(values: list[bytes | None]) -> pa.Array:
    """Header values as text; bytes that are not UTF-8 decoded with replacement characters."""
    try:
        return pa.array(values, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8 somewhere: value by value, as the text it shows
        return pa.array(
            [v.decode("utf-8", "replace") if v is not None else None for v in values], pa.string()
        )
