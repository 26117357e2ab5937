"""Raw Kafka batches for adapter tests (imported by the adapter test modules)."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import strategies as st

from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.fields import DEVICE_FIELD_NAMES
from schemas.records import RAW_RECORD_SCHEMA

INGEST_MS = 1_764_032_524_000

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value (small): what a field of a hostile or broken report may hold."""


def raw(*values: bytes | None, wire_format: str | None = None) -> pa.RecordBatch:
    """A batch of records on partition 2 from offset 100, all declaring ``wire_format``."""
    n = len(values)
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["t"] * n,
            "partition": [2] * n,
            "offset": list(range(100, 100 + n)),
            "timestamp_ms": [INGEST_MS] * n,
            "key": [b"k"] * n,
            "value": list(values),
            "format": [wire_format] * n,
            "signature": [None] * n,
        },
        schema=RAW_RECORD_SCHEMA,
    )


def reasons(wire_format: str, *values: bytes | None) -> list[str]:
    """The quarantine reason codes, in offset order, when ``values`` are standardized."""
    result = standardize(raw(*values, wire_format=wire_format), adapter_for(wire_format))
    return result.quarantined.column("reason_code").to_pylist()


def messages(wire_format: str, *values: bytes | None) -> list[str]:
    result = standardize(raw(*values, wire_format=wire_format), adapter_for(wire_format))
    return result.quarantined.column("reason").to_pylist()


def both_paths(wire_format: str, *values: bytes | None) -> tuple:
    """(published rows, quarantine) with the adapter's Arrow bulk path, and with every message
    one by one: the two must agree."""
    outcomes = []
    for bulk in (True, False):
        adapter = adapter_for(wire_format)
        adapter.bulk = bulk
        result = standardize(raw(*values, wire_format=wire_format), adapter)
        rows = {ds: batch.to_pylist() for ds, batch in result.published.items()}
        quarantined = result.quarantined.select(["offset", "reason_code", "reason"]).to_pylist()
        outcomes.append((rows, quarantined))
    return tuple(outcomes)


def published(wire_format: str, *values: bytes | None) -> dict[str, list[dict]]:
    """Published rows per dataset, without the lineage and device signature columns (ingest,
    not the adapter, fills those)."""
    result = standardize(raw(*values, wire_format=wire_format), adapter_for(wire_format))
    lineage = {"source_topic", "source_partition", "source_offset", "ingest_time"}
    lineage |= DEVICE_FIELD_NAMES
    return {
        dataset: [{k: v for k, v in row.items() if k not in lineage} for row in rows.to_pylist()]
        for dataset, rows in result.published.items()
    }
