"""Query results in the four formats buyers ask for, each naming its checkpoints.

JSON carries the checkpoints in the body; Arrow IPC and Parquet in their schema metadata
(key ``rda.checkpoints``); CSV, which has nowhere to put them, relies on the HTTP header
``RDA-Checkpoints`` (also sent with every other format) or the CLI's report on stderr.

Results are encoded batch by batch as the query yields them, into a ``ResultSink`` that
counts bytes: a result past the byte limit is refused as soon as it is, never held whole. Small
results stay in memory; larger ones go to a spool file that the server streams to the buyer.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from market.policy import QueryRefused

FORMATS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
INLINE_BYTES = 256 * 1024  # results up to this size travel in memory


class ResultSink(io.RawIOBase):
    """A byte sink with a size limit: memory first, a spool file past ``INLINE_BYTES``."""

    def __init__(self, max_bytes: int, spool_dir: Path | None = None) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.spool_dir = spool_dir
        self.size = 0
        self._memory = bytearray()
        self._file: Any = None
        self._path: str | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(memoryview(data).cast("B"))
        self.size += size
        if self.size > self.max_bytes:
            return size  # counted, not kept: the encoder checks ``over`` after each batch
        if self._file is None and self.spool_dir is not None and self.size > INLINE_BYTES:
            fd, self._path = tempfile.mkstemp(prefix=f"result-{os.getpid()}-", dir=self.spool_dir)
            self._file = os.fdopen(fd, "wb")
            self._file.write(self._memory)
            self._memory = bytearray()
        if self._file is not None:
            self._file.write(data)
        else:
            self._memory += data
        return size

    @property
    def over(self) -> bool:
        return self.size > self.max_bytes

    def check(self) -> None:
        if self.over:
            self.discard()
            raise QueryRefused(
                "result_too_large",
                f"the encoded result is larger than {self.max_bytes} bytes: select fewer "
                "columns or rows, or aggregate",
                413,
            )

    def finish(self) -> tuple[bytes | None, str | None]:
        """(bytes, None) for an in-memory result, (None, path) for a spooled one."""
        self.check()
        if self._file is None:
            return bytes(self._memory), None
        self._file.close()
        return None, self._path

    def discard(self) -> None:
        self._memory = bytearray()
        if self._file is not None:
            self._file.close()
            Path(str(self._path)).unlink(missing_ok=True)
            self._file = None


def write_result(
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    fmt: str,
    envelope: dict[str, Any],
    sink: ResultSink,
) -> int:
    """Encode ``batches`` in ``fmt`` into ``sink``; ``envelope`` (checkpoints, proofs…) goes
    with them. Returns the row count; refuses as soon as the sink is over its limit."""
    if fmt == "json":
        return _write_json(schema, batches, envelope, sink)
    rows = 0
    if fmt == "csv":
        with pacsv.CSVWriter(sink, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
                sink.check()
        return rows
    metadata = {b"rda.checkpoints": json.dumps(envelope["checkpoints"]).encode()}
    schema = schema.with_metadata({**(schema.metadata or {}), **metadata})
    if fmt == "arrow":
        writer: Any = pa.ipc.new_stream(sink, schema)
    elif fmt == "parquet":
        writer = pq.ParquetWriter(sink, schema)
    else:
        raise ValueError(f"unknown result format {fmt!r}; use one of {', '.join(FORMATS)}")
    with writer:
        for batch in batches:
            writer.write_batch(batch.replace_schema_metadata(schema.metadata))
            rows += batch.num_rows
            sink.check()
    return rows


def _write_json(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], envelope: dict[str, Any], sink
) -> int:
    def dump(value: object) -> bytes:
        try:  # a bare NaN or Infinity is no JSON: strict parsers refused the whole answer
            text = json.dumps(value, default=_json_value, separators=(",", ":"), allow_nan=False)
        except ValueError:  # one inside a list or struct (top-level columns are nulled)
            raise QueryRefused(
                "query_failed",
                "the result holds NaN or Infinity inside a nested value, which JSON cannot "
                "write: ask for format=parquet or arrow, or map them to NULL",
            ) from None
        return text.encode()

    columns = [{"name": f.name, "type": str(f.type)} for f in schema]
    head = {k: v for k, v in envelope.items() if k != "proofs"}
    sink.write(dump({**head, "columns": columns})[:-1] + b',"rows":[')
    rows = 0
    for batch in batches:
        if batch.num_rows:
            rows_as_json = _finite_or_null(_leaf_timestamps(batch)).to_pylist()
            sink.write((b"," if rows else b"") + dump(rows_as_json)[1:-1])
        rows += batch.num_rows
        sink.check()
    tail = {"row_count": rows, **({"proofs": envelope["proofs"]} if "proofs" in envelope else {})}
    sink.write(b"]," + dump(tail)[1:])
    sink.check()
    return rows


def _finite_or_null(batch: pa.RecordBatch) -> pa.RecordBatch:
    """NaN and ±Infinity in float columns as null, as JavaScript's ``JSON.stringify`` writes
    them: JSON has no such numbers (the formats that do keep them)."""
    columns, changed = [], False
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_floating(field.type) and not pc.all(pc.is_finite(column)).as_py():
            column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, field.type))
            changed = True
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema) if changed else batch


def _leaf_timestamps(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Timestamps as text the way leaf bytes write them (``2026-11-25T01:02:03.000000Z``),
    formatted by Arrow in C++: a Python callback per value was half the encoding time."""
    if not any(pa.types.is_timestamp(f.type) for f in batch.schema):
        return batch
    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            micros = pa.timestamp("us", "UTC" if field.type.tz else None)
            column = pc.strftime(column.cast(micros, safe=False), format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def encode(table: pa.Table, fmt: str, envelope: dict[str, Any]) -> bytes:
    """The whole result as bytes in ``fmt`` (no size limit: for callers that hold the table)."""
    sink = ResultSink(max_bytes=2**62)
    write_result(table.schema, table.to_batches(), fmt, envelope, sink)
    body, _path = sink.finish()
    return body or b""


def _json_value(value: object) -> object:
    if isinstance(value, dt.datetime):  # as in leaf bytes (docs/proof-format.md section 2)
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).decode().rstrip("=")
    return str(value)
