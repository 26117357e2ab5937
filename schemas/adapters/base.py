"""The adapter contract: raw Kafka records in, canonical rows and reasoned rejects out.

An adapter decodes one wire format. A record may yield rows of several canonical schemas (a
node's native JSON carries radio KPIs or heartbeats) and several rows per schema (a gNMI
notification updates many paths; a CSV export holds many lines). Every row remembers the raw
record it came from, so a record is either published whole or quarantined whole, with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from schemas.adapters.bounds import MAX_MESSAGE_BYTES
from schemas.model import TelemetrySchema

__all__ = ["MAX_MESSAGE_BYTES", "Adapter", "DecodeResult", "DecodedRows"]


@dataclass(frozen=True)
class DecodedRows:
    """Rows of one canonical schema, and for each the raw record position it came from.

    ``rows`` carry the schema's column names (lineage columns included) and canonical units, with
    integers still 64-bit and values not yet checked: ``TelemetrySchema.conform`` narrows them
    after the row checks. ``row_index[i]`` is the raw batch position of row ``i``.
    """

    schema: TelemetrySchema
    rows: pa.RecordBatch
    row_index: pa.Int64Array


@dataclass(frozen=True)
class DecodeResult:
    """What an adapter made of a raw batch: rows per schema, and rejected raw positions."""

    parts: tuple[DecodedRows, ...] = ()
    rejected_index: pa.Int64Array = field(default_factory=lambda: pa.array([], pa.int64()))
    reject_codes: pa.StringArray = field(default_factory=lambda: pa.array([], pa.string()))
    reject_reasons: pa.StringArray = field(default_factory=lambda: pa.array([], pa.string()))


class Adapter(Protocol):
    """Decodes one wire format into canonical schemas. Never raises on bad input."""

    wire_format: str
    schemas: Sequence[TelemetrySchema]

    def decode(self, raw: pa.RecordBatch) -> DecodeResult: ...


def lineage_columns(raw: pa.RecordBatch, row_index: pa.Array) -> dict[str, pa.Array]:
    """The lineage columns every canonical row carries, taken from its raw record."""
    import pyarrow.compute as pc

    # The four columns alone: taking every column copied each record's raw bytes too.
    taken = raw.select(["topic", "partition", "offset", "timestamp_ms"]).take(row_index)
    micros = pa.timestamp("us", tz="UTC")
    return {
        "source_topic": taken.column("topic"),
        "source_partition": taken.column("partition"),
        "source_offset": taken.column("offset"),
        "ingest_time": pc.multiply(taken.column("timestamp_ms"), 1000).cast(micros),
    }


def rejects(positions: list[int], codes: list[str], reasons: list[str]) -> DecodeResult:
    """A result with only rejects (sorted by position), for adapters to build on."""
    order = sorted(range(len(positions)), key=positions.__getitem__)
    return DecodeResult(
        rejected_index=pa.array([positions[i] for i in order], pa.int64()),
        reject_codes=pa.array([codes[i] for i in order], pa.string()),
        reject_reasons=pa.array([reasons[i] for i in order], pa.string()),
    )


def canonical_rows(
    schema: TelemetrySchema, columns: dict[str, pa.Array | list], num_rows: int
) -> pa.RecordBatch:
    """A batch with every column of ``schema``: given ones as they are, absent ones null.

    Integer columns stay 64-bit (or whatever width was given) so out-of-range values reach the
    row checks; every other absent column gets its canonical type.
    """
    unknown = set(columns) - {f.name for f in schema.all_fields}
    if unknown:
        raise KeyError(f"{schema.name} has no field(s) {sorted(unknown)}")
    arrays, names = [], []
    for f in schema.all_fields:
        value = columns.get(f.name)
        if value is None:
            wide = pa.int64() if pa.types.is_integer(f.type) else f.type
            value = pa.nulls(num_rows, wide)
        elif not isinstance(value, pa.Array | pa.ChunkedArray):
            wide = pa.int64() if pa.types.is_integer(f.type) else f.type
            value = pa.array(value, wide)
        arrays.append(value)
        names.append(f.name)
    return pa.RecordBatch.from_arrays(arrays, names=names)
