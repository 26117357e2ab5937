"""iperf3 results (``iperf3 --json``) → speed_test v2, one result per Kafka message.

| speed_test field | from the iperf3 result |
|---|---|
| source | ``iperf3`` |
| test_id | ``start.cookie`` (iperf3's random id of the test) |
| event_time | ``start.timestamp.timesecs`` (epoch seconds) |
| download_mbps / upload_mbps | the receiver's ``bits_per_second`` / 10⁶, see below |
| duration_s | the receiver's ``seconds`` |
| latency_ms | ``end.streams[0].sender.min_rtt`` (µs, TCP on Linux) / 1000 |
| jitter_ms | ``end.sum.jitter_ms`` (UDP) |
| server, source_version | ``start.connecting_to.host``, ``start.version`` |
| client_name | ``iperf3`` |

The receiver's summary is ``end.sum_received`` (``end.sum`` for UDP). The test is a download
when ``start.test_start.reverse`` is 1 (the server sent), else an upload.

A result whose ``error`` is set measured nothing and is rejected as ``no_measurement``. The
client's own address (``start.connected[].local_host``) is personal data: it is never read.
One-line results go through Arrow's JSON reader in bulk; anything else, message by message,
with the same rows and reasons (``check_adapter`` holds the two paths to it).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from schemas.adapters.toolkit import (
    DecodedRows,
    DecodeResult,
    Reject,
    Rejections,
    canonical_rows,
    epoch_to_micros,
    get_schema,
    implausible_times,
    lineage_columns,
    load_json_object,
    one_line_objects,
    parse_objects,
    screen,
    to_float,
    to_int,
    to_text,
)

WIRE_FORMAT = "iperf3.json"
SPEED_TEST = get_schema("speed_test.v2")
SLOTS = ("test_id", "seconds", "download_mbps", "upload_mbps", "duration_s", "latency_ms")
SLOTS += ("jitter_ms", "server", "source_version")
_STRINGS = ("test_id", "server", "source_version")
_SUMMARY = pa.struct(
    [("seconds", pa.float64()), ("bits_per_second", pa.float64()), ("jitter_ms", pa.float64())]
)
_BULK = pajson.ParseOptions(
    explicit_schema=pa.schema(
        [
            ("error", pa.string()),
            (
                "start",
                pa.struct(
                    [
                        ("cookie", pa.string()),
                        ("version", pa.string()),
                        ("timestamp", pa.struct([("timesecs", pa.int64())])),
                        ("connecting_to", pa.struct([("host", pa.string())])),
                        (
                            "test_start",
                            pa.struct([("protocol", pa.string()), ("reverse", pa.int64())]),
                        ),
                    ]
                ),
            ),
            (
                "end",
                pa.struct(
                    [
                        ("sum_received", _SUMMARY),
                        ("sum", _SUMMARY),
                        (
                            "streams",
                            pa.list_(pa.struct([("sender", pa.struct([("min_rtt", pa.int64())]))])),
                        ),
                    ]
                ),
            ),
        ]
    ),
    unexpected_field_behavior="ignore",
    newlines_in_values=False,
)


class Iperf3Adapter:
    """Decodes iperf3 JSON results into speed_test rows."""

    wire_format = WIRE_FORMAT
    schemas = (SPEED_TEST,)
    bulk = True  # Arrow's reader for one-line TCP results; off: every message one by one

    @staticmethod
    def looks_like(value: bytes) -> bool:
        """Sniffed under ``--format auto``: an iperf3 result names its test_start and cookie."""
        return value.lstrip()[:1] == b"{" and b'"test_start"' in value and b'"cookie"' in value

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        values = raw.column("value")
        taken, columns = _bulk(values) if self.bulk else (pa.array([], pa.int64()), None)
        rest = sorted(set(range(len(values))) - set(taken.to_pylist()))
        rejected, rows, index = Rejections(), [], []
        for local, value in screen(values.take(pa.array(rest, pa.int64())), rejected):
            try:
                rows.append(_row(load_json_object(value)))
                index.append(rest[local])
            except Reject as reject:
                rejected.add(local, reject.code, reject.reason)
        rejected.positions = [rest[local] for local in rejected.positions]  # raw positions
        by_slot = list(zip(*rows, strict=True)) if rows else [()] * len(SLOTS)
        found = {s: pa.array(list(v), _type(s)) for s, v in zip(SLOTS, by_slot, strict=True)}
        if columns is not None:
            found = {s: pa.concat_arrays([columns[s], found[s]]) for s in SLOTS}
        positions = pa.concat_arrays([taken, pa.array(index, pa.int64())])
        part = _part(raw, found, positions, rejected) if len(positions) else None
        return rejected.result((part,) if part is not None else ())


def _type(slot: str) -> pa.DataType:
    return pa.string() if slot in _STRINGS else pa.float64()


def _row(document: dict) -> tuple:
    """The slot values of one result, message by message."""
    if document.get("error") is not None:
        error = to_text(document["error"], "error") or ""
        raise Reject("no_measurement", f"iperf3 reported an error: {error[:120]}")
    start, end = _object(document, "start"), _object(document, "end")
    test = _object(start, "test_start", "start.")
    udp = (to_text(test.get("protocol"), "start.test_start.protocol") or "").upper() == "UDP"
    summary = _object(end, "sum" if udp else "sum_received", "end.")
    where = "end.sum" if udp else "end.sum_received"
    bits = to_float(summary.get("bits_per_second"), f"{where}.bits_per_second")
    reverse = to_int(test.get("reverse"), "start.test_start.reverse")
    if bits is None or reverse is None:
        raise Reject("no_measurement", f"no {where}.bits_per_second or test_start.reverse")
    streams = end.get("streams") or [{}]
    if type(streams) is not list or type(streams[0]) is not dict:
        raise Reject("wrong_type", "end.streams must be a list of objects")
    sender = _object(streams[0], "sender", "end.streams[0].")
    rtt = to_int(sender.get("min_rtt"), "end.streams[0].sender.min_rtt")
    return (
        to_text(start.get("cookie"), "start.cookie"),
        to_int(_object(start, "timestamp", "start.").get("timesecs"), "start.timestamp.timesecs"),
        bits / 1e6 if reverse else None,
        None if reverse else bits / 1e6,
        to_float(summary.get("seconds"), f"{where}.seconds"),
        None if rtt is None else rtt / 1000,
        to_float(summary.get("jitter_ms"), f"{where}.jitter_ms") if udp else None,
        to_text(_object(start, "connecting_to", "start.").get("host"), "start.connecting_to.host"),
        to_text(start.get("version"), "start.version"),
    )


def _object(document: dict, name: str, where: str = "") -> dict:
    found = document.get(name)
    if found is None:
        return {}
    if type(found) is not dict:
        raise Reject("wrong_type", f"{where}{name} must be an object")
    return found


def _bulk(values: pa.Array) -> tuple[pa.Array, dict[str, pa.Array] | None]:
    """(raw positions taken, slot columns) of the one-line TCP results Arrow parses."""
    fit = pc.filter(pa.array(range(len(values)), pa.int64()), one_line_objects(values, "{"))
    positions, table = parse_objects(values, fit, _BULK)
    if table is None:
        return pa.array([], pa.int64()), None
    start, end, error = (table.column(c).combine_chunks() for c in ("start", "end", "error"))
    test = pc.struct_field(start, "test_start")
    ok = pc.and_(pc.is_null(error), pc.equal(pc.struct_field(test, "protocol"), "TCP"))
    ok = pc.and_(ok, pc.is_valid(pc.struct_field(test, "reverse")))
    ok = pc.and_(
        ok, pc.is_valid(pc.struct_field(pc.struct_field(end, "sum_received"), "bits_per_second"))
    )
    ok = pc.and_(ok, pc.greater(pc.list_value_length(pc.struct_field(end, "streams")), 0))
    ok = pc.fill_null(ok, False)  # the others go message by message
    start, end, positions = pc.filter(start, ok), pc.filter(end, ok), pc.filter(positions, ok)
    first = pc.list_element(pc.struct_field(end, "streams"), 0)
    ok = pc.is_valid(first)  # a null stream is refused by the message path, with its reason
    start, end, positions = pc.filter(start, ok), pc.filter(end, ok), pc.filter(positions, ok)
    test, received = pc.struct_field(start, "test_start"), pc.struct_field(end, "sum_received")
    mbps = pc.divide(pc.struct_field(received, "bits_per_second"), 1e6)
    download = pc.not_equal(pc.struct_field(test, "reverse"), 0)
    sender = pc.struct_field(pc.list_element(pc.struct_field(end, "streams"), 0), "sender")
    columns = {
        "test_id": pc.struct_field(start, "cookie"),
        "seconds": pc.struct_field(pc.struct_field(start, "timestamp"), "timesecs"),
        "download_mbps": pc.if_else(download, mbps, None),
        "upload_mbps": pc.if_else(download, None, mbps),
        "duration_s": pc.struct_field(received, "seconds"),
        "latency_ms": pc.divide(pc.struct_field(sender, "min_rtt").cast(pa.float64()), 1000),
        "jitter_ms": pa.nulls(len(positions), pa.float64()),
        "server": pc.struct_field(pc.struct_field(start, "connecting_to"), "host"),
        "source_version": pc.struct_field(start, "version"),
    }
    return positions, {slot: column.cast(_type(slot)) for slot, column in columns.items()}


def _part(
    raw: pa.RecordBatch, columns: dict[str, pa.Array], index: pa.Array, rejected: Rejections
) -> DecodedRows | None:
    columns = dict(columns)
    seconds = columns.pop("seconds").cast(pa.float64())
    columns["event_time"] = epoch_to_micros(seconds, "s")
    columns["source"] = pa.repeat(pa.scalar("iperf3"), len(index))
    columns["client_name"] = pa.repeat(pa.scalar("iperf3"), len(index))
    rows = canonical_rows(SPEED_TEST, columns | lineage_columns(raw, index), len(index))
    bad = implausible_times(seconds, columns["event_time"])
    for position in pc.filter(index, bad).to_pylist():
        rejected.add(position, "bad_timestamp", "start.timestamp.timesecs is not in 2000..2100")
    keep = pc.invert(bad)
    index = pc.filter(index, keep)
    return DecodedRows(SPEED_TEST, rows.filter(keep), index) if len(index) else None
