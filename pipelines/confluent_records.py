"""confluent-kafka messages as a read sorts them into its ranges, and as raw Arrow batches
(``schemas/records.RAW_RECORD_SCHEMA``): the hot path of every landing, a Python call per
message and column, not a row of appends."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipelines.kafka_source import (
    FORMAT_HEADER,
    KafkaUnavailable,
    OffsetRange,
    ReadBudget,
    RecordsLost,
)
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


def by_partition(messages: list[Any], what: str) -> dict[int, list[Any]]:
    """The messages of each range's partition, in the order consumed; an error fails the read
    unless librdkafka retries it itself (a transient fetch error). A read from an offset the
    broker no longer has is ``RecordsLost`` (``auto.offset.reset`` is ``error``)."""
    from confluent_kafka import KafkaError

    found: dict[int, list[Any]] = {}
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._AUTO_OFFSET_RESET:
                raise RecordsLost(
                    f"{what}: records are no longer on the broker "
                    f"(deleted before they were read): {error.str()}"
                )
            if error.retriable() or not error.fatal():
                continue
            raise KafkaUnavailable(f"{what}: {error}")
        found.setdefault(message.partition(), []).append(message)
    return found


def keep_in_range(messages: list[Any], position: int, offsets: OffsetRange, kept: list) -> int:
    """Append to ``kept`` the messages at or after ``position`` and before the range's end, in
    order; the position after them (the range's end once a message past it is seen)."""
    for message in messages:
        offset = message.offset()
        if offset < position:
            continue  # an older prefetch
        if offset >= offsets.end:
            return offsets.end
        kept.append(message)
        position = offset + 1
    return position


def past_end(messages: list[Any], offsets: OffsetRange) -> list[Any]:
    """The messages from the first one past the range's end on (none when it has not passed)."""
    if not messages or messages[-1].offset() < offsets.end:
        return []
    first = next(i for i, message in enumerate(messages) if message.offset() >= offsets.end)
    return messages[first:]


def count_bytes(budget: ReadBudget, offsets: OffsetRange, kept: list[Any], first: int) -> None:
    """Count ``kept[first:]``, the messages of ``offsets`` just kept, against the read's
    ``budget``; once the range is over it, let go of every message kept."""
    if budget.max_bytes is None or first >= len(kept):
        return
    new = kept[first:] if first else kept
    if budget.count(offsets, record_sizes(new), lambda: [m.offset() for m in new]):
        kept.clear()  # read on only to find where to split the range: keep nothing


def record_sizes(messages: list[Any]) -> list[int]:
    """Each message's bytes as ``ReadBudget`` counts them (``header_bytes``): its value's (``len``
    of a message, not copied), its key's and its headers' (converted once by confluent-kafka:
    ``raw_batch`` reads the same list). One loop, no call per message but the message's own:
    this runs for every record landed (~0.3 µs a message less than a call per header list)."""
    sizes = []
    for message in messages:
        size = len(message)
        key = message.key()
        if key is not None:
            size += len(key)
        headers = message.headers()
        if headers:
            for name, value in headers:
                size += len(name) if value is None else len(name) + len(value)
        sizes.append(size)
    return sizes
