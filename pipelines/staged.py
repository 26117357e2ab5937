"""Staged rows: what the Beam stage hands the driver's event-time step, privately.

A staged row is a row in its dataset's *published* schema — pseudonyms, truncated addresses, H3
cells, coarsened times already applied, ``quality_flags`` still empty — followed by private
columns (names starting with ``_``) that the stateful decisions need and that are never
published:

* ``_event_time``: the exact event time (the published one may be coarsened);
* ``_quarantine``: the code its record was quarantined with in the stage, else null (such rows
  still count in the quality figures);
* ``_latitude``, ``_longitude``: the exact location, where the published schema has an H3 cell;
* ``_subscriber``: a keyed hash of the subscriber, the same in every key epoch (the DP budget
  ledger's key);
* ``_record_key``, ``_record_value``, ``_record_timestamp_ms``, ``_record_format``,
  ``_record_signature`` (windowed datasets only): the row's Kafka record, whole, so that a
  record k-anonymity withholds hours later is stored whole without reading Kafka again;
* ``_window`` (held rows only): the start of the event-time window the row waits for, in µs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import pyarrow as pa

from schemas.model import Privacy, TelemetrySchema
from schemas.published import published_schema
from schemas.records import RAW_RECORD_SCHEMA
from schemas.registry import schema_for_dataset

EVENT_TIME = "_event_time"
QUARANTINE = "_quarantine"
LATITUDE, LONGITUDE = "_latitude", "_longitude"
SUBSCRIBER = "_subscriber"
WINDOW = "_window"
RECORD = {  # private column -> the raw record's column (schemas/records.py)
    "_record_key": "key",
    "_record_value": "value",
    "_record_timestamp_ms": "timestamp_ms",
    "_record_format": "format",
    "_record_signature": "signature",
}
PRIVATE_PREFIX = "_"


@functools.cache
def is_windowed(dataset: str) -> bool:
    """A dataset whose quasi-identifiers are decided per closed event-time window (k-anonymity)."""
    return any(f.privacy is Privacy.QUASI_IDENTIFIER for f in schema_for_dataset(dataset).fields)


def precise_location(schema: TelemetrySchema) -> bool:
    return any(f.privacy is Privacy.PRECISE_LOCATION for f in schema.fields)


@functools.cache
def _published_arrow(dataset: str) -> pa.Schema:
    return published_schema(schema_for_dataset(dataset)).arrow_schema()


def published_names(dataset: str) -> list[str]:
    """The published columns of ``dataset``, in order."""
    return _published_arrow(dataset).names


def published_part(rows: pa.Table | pa.RecordBatch, dataset: str) -> pa.Table:
    """The published columns of staged rows, exactly in the published schema."""
    schema = _published_arrow(dataset)
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
    return table.select(schema.names).cast(schema)


def records_of(rows: pa.Table) -> pa.Table:
    """The raw records (``RAW_RECORD_SCHEMA``) carried by staged rows of a windowed dataset,
    one per record, in stream order."""
    columns = {
        "topic": rows.column("source_topic"),
        "partition": rows.column("source_partition"),
        "offset": rows.column("source_offset"),
        **{raw: rows.column(private) for private, raw in RECORD.items()},
    }
    table = pa.table({name: columns[name] for name in RAW_RECORD_SCHEMA.names})
    table = table.group_by(["partition", "offset"], use_threads=False).aggregate(
        [(name, "first") for name in RAW_RECORD_SCHEMA.names if name not in ("partition", "offset")]
    )
    table = table.rename_columns([n.removesuffix("_first") for n in table.column_names])
    order = [("partition", "ascending"), ("offset", "ascending")]
    return table.select(RAW_RECORD_SCHEMA.names).sort_by(order).cast(RAW_RECORD_SCHEMA)


def canonical_view(rows: pa.Table, names: Iterable[str]) -> dict[str, pa.Array]:
    """Those of the columns ``names`` the rows have (the sequence checks' inputs), under their
    canonical names: the exact location where the rows stage one (the published is coarse)."""
    exact = {"latitude": LATITUDE, "longitude": LONGITUDE}
    present = set(rows.column_names)
    columns = {}
    for name in names:
        source = exact[name] if exact.get(name) in present else name
        if source in present:
            columns[name] = rows.column(source).combine_chunks()
    return columns
