"""Adapter for M-Lab NDT7 results (``mlab.ndt7``) → speed_test v2.

One message is one NDT7 result as ndt-server archives it (``ndt7-<subtest>-<time>.<uuid>.json``,
M-Lab's ``ndt7`` raw data): one subtest, a download or an upload. See ``ndt7_result`` for the
field sets of every server version and ``docs/pipeline.md`` for the mapping:

- source ``mlab.ndt7``, no node id (an M-Lab client is not a node of this network);
- test id: the subtest's ``UUID`` (else a ``ConnectionInfo.UUID``), ``_unsafe`` removed;
- event time and duration: the subtest's ``StartTime`` (else the result's), in UTC, and
  ``EndTime`` − ``StartTime``;
- throughput: the last snapshot's ``BytesAcked`` (download) or ``BytesReceived`` (upload) × 8
  / ``ElapsedTime``; latency: its ``MinRTT``; retransmissions (downloads): ``BytesRetrans`` /
  ``BytesSent``;
- server, site and version: ``ServerIP``, the site in a machine name, ``Version``;
- the client: its network (published as a pseudonym) and a ``client_name`` naming a known ndt7
  client.

Each message is decoded with ``json.loads`` (results are 5–50 KB of nested snapshots, of which a
handful of values are read); typing, times and checks then run on whole Arrow columns.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from schemas.adapters.base import DecodedRows, DecodeResult, canonical_rows, lineage_columns
from schemas.adapters.messages import Reject, Rejections, load_json_object, screen
from schemas.adapters.ndt7_result import SLOTS, result_row
from schemas.adapters.normalize import implausible_times, text_to_micros
from schemas.model import TelemetrySchema
from schemas.service import SPEED_TEST_V2

WIRE_FORMAT = "mlab.ndt7"
SOURCE = "mlab.ndt7"
_FLOATS = ("download_mbps", "upload_mbps", "latency_ms", "retransmit_pct")


class MlabNdt7Adapter:
    """Decodes M-Lab NDT7 download and upload results into speed_test v2 rows."""

    wire_format = WIRE_FORMAT
    schemas: tuple[TelemetrySchema, ...] = (SPEED_TEST_V2,)

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        rejected = Rejections()
        rows, index = [], []
        for position, value in screen(raw.column("value"), rejected):
            try:
                rows.append(result_row(load_json_object(value)))
            except Reject as reject:
                rejected.add(position, reject.code, reject.reason)
                continue
            index.append(position)
        if not rows:
            return rejected.result()
        part = _part(raw, rows, pa.array(index, pa.int64()), rejected)
        return rejected.result((part,) if part is not None else ())


def looks_like(value: bytes) -> bool:
    """Content sniff over the whole message: a JSON object with an NDT7 subtest and its UUID."""
    return (
        value.lstrip()[:1] == b"{"
        and (b'"Download"' in value or b'"Upload"' in value)
        and b'"UUID"' in value
        and b'"ServerIP"' in value
    )


def _part(
    raw: pa.RecordBatch, rows: list[tuple], index: pa.Array, rejected: Rejections
) -> DecodedRows | None:
    slots = dict(zip(SLOTS, zip(*rows, strict=True), strict=True))
    texts = {name: pa.array(slots.pop(name), pa.string()) for name in ("StartTime", "EndTime")}
    times = {name: text_to_micros(text)[0] for name, text in texts.items()}
    columns: dict[str, pa.Array] = {
        name: pa.array(values, pa.float64() if name in _FLOATS else pa.string())
        for name, values in slots.items()
    }
    start, end = (times[name].cast(pa.int64()) for name in ("StartTime", "EndTime"))
    columns |= {
        "source": pa.repeat(pa.scalar(SOURCE), len(index)),
        "event_time": times["StartTime"],
        "duration_s": pc.divide(pc.subtract(end, start).cast(pa.float64()), 1e6),
    }
    batch = canonical_rows(SPEED_TEST_V2, columns | lineage_columns(raw, index), len(index))
    # A time that is present but not a time, or not between 2000 and 2100 (Go's zero time).
    bad = {name: implausible_times(texts[name], times[name]) for name in texts}
    unusable = pc.or_(bad["StartTime"], bad["EndTime"])
    if not pc.any(unusable).as_py():
        return DecodedRows(SPEED_TEST_V2, batch, index)
    for name in texts:
        failed = pc.and_(bad[name], pc.invert(bad["StartTime"])) if name == "EndTime" else bad[name]
        for position, text in zip(
            pc.filter(index, failed).to_pylist(),
            pc.filter(texts[name], failed).to_pylist(),
            strict=True,
        ):
            reason = f"{name}={text[:40]!r} is not an RFC 3339 time between 2000 and 2100"
            rejected.add(position, "bad_timestamp", reason)
    keep = pc.invert(unusable)
    index = pc.filter(index, keep)
    return DecodedRows(SPEED_TEST_V2, batch.filter(keep), index) if len(index) else None
