"""The adapter contract: raw Kafka records in, canonical rows and reasoned rejects out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from schemas.model import TelemetrySchema

# Messages above this size are refused before parsing (Kafka's default max message size).
MAX_MESSAGE_BYTES = 1_000_000


@dataclass(frozen=True)
class DecodeResult:
    """What an adapter made of a raw batch.

    ``rows`` carry the canonical column names and units, with integers still 64-bit and values
    not yet checked (``TelemetrySchema.conform`` narrows them after the row checks);
    ``row_index[i]`` is the position in the raw batch that row ``i`` came from;
    ``rejected_index`` lists the raw positions that could not be decoded, with a reason code
    and message for each.
    """

    rows: pa.RecordBatch
    row_index: pa.Int64Array
    rejected_index: pa.Int64Array
    reject_codes: pa.StringArray
    reject_reasons: pa.StringArray


class Adapter(Protocol):
    """Decodes one wire format into one canonical schema. Never raises on bad input."""

    wire_format: str
    schema: TelemetrySchema

    def decode(self, raw: pa.RecordBatch) -> DecodeResult: ...


def adapter_for(wire_format: str) -> Adapter:
    """The adapter registered for ``wire_format``."""
    from schemas.adapters.node_json import NodeJsonAdapter

    adapters: dict[str, Adapter] = {NodeJsonAdapter.wire_format: NodeJsonAdapter()}
    try:
        return adapters[wire_format]
    except KeyError:
        known = ", ".join(sorted(adapters))
        raise KeyError(f"no adapter for wire format {wire_format!r} (known: {known})") from None
