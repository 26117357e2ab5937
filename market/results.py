"""Query results in the four formats buyers ask for, each naming its checkpoints.

JSON carries the checkpoints in the body; Arrow IPC and Parquet in their schema metadata
(key ``rda.checkpoints``); CSV, which has nowhere to put them, relies on the HTTP header
``RDA-Checkpoints`` (also sent with every other format) or the CLI's report on stderr.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}


def encode(table: pa.Table, fmt: str, envelope: dict[str, Any]) -> bytes:
    """The result as bytes in ``fmt``; ``envelope`` (checkpoints, proofs…) goes with it."""
    if fmt == "json":
        body = {
            **envelope,
            "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "row_count": table.num_rows,
            "rows": table.to_pylist(),
        }
        return json.dumps(body, default=_json_value, separators=(",", ":")).encode()
    if fmt == "csv":
        sink = io.BytesIO()
        pacsv.write_csv(table, sink)
        return sink.getvalue()
    metadata = {b"rda.checkpoints": json.dumps(envelope["checkpoints"]).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    if fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    elif fmt == "parquet":
        pq.write_table(table, sink)
    else:
        raise ValueError(f"unknown result format {fmt!r}; use one of {', '.join(FORMATS)}")
    return sink.getvalue()


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
