"""Adapter for RIPE Atlas measurement results (``ripe.atlas.result``): ping → link_kpi,
traceroute → path_trace.

One message is one result object as RIPE Atlas publishes it (API or daily dumps). The format
drifted across probe firmware (``fw`` 1, 4400, 4460, 4540, 4570, 4610, 4750, 5000+); every
documented variant is read:

| what | variants read (first found wins) |
|---|---|
| kind | ``type``; ``msm_name`` (``Ping``, ``Traceroute``); else the shape (hops, ``sent``) |
| start time | ``timestamp``; else ``endtime`` (epoch seconds, number or string) |
| target | ``dst_name``, ``name``, ``dst_addr``, ``addr``, ``address`` |
| address family | ``af``; ``pf``, ``mode`` ``ICMP4``/``UDP6`` (4400); else from the target |
| protocol | ``proto``; ``mode`` (4400); else ICMP for ping, UDP for traceroute (the defaults) |
| numbers | JSON numbers, or strings (firmware 0/1 sent ``"rcvd": "3"``, ``"avg": "58.042"``) |

Ping (link_kpi): ``link_id`` = ``ripe-msm-<msm_id>-prb-<prb_id>``, ``node_id`` =
``ripe-probe-<prb_id>``, ``peer`` = target, ``link_type`` = ``internet_path``; ``sent``,
``rcvd`` → packets; ``loss_pct`` = (sent − rcvd) / sent × 100; ``avg``/``min``/``max`` → latency
(``-1``, sent when nothing answered, is null); ``jitter_ms`` = mean absolute difference of
successive RTTs in ``result`` (timeouts ``{"x": "*"}``, errors and ``dup`` replies skipped).

Traceroute (path_trace): ``trace_id`` as ``link_id``; hops summarized by ``ripe_hops``.

Probe addresses (``from``, ``src_addr``, ``srcaddr``) and hop addresses are personal data and
are dropped; a target inside the probe's own /24 or /48 is published as that network
(``ripe_targets``). ``lts``, ``group_id``, ``bundle``, ``size``, ``ttl``, ``paris_id``,
``step`` carry no canonical field and are ignored. A result of any other type (dns, http,
sslcert, ntp…) is quarantined as ``unknown_kind``.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas.adapters.base import DecodedRows, DecodeResult, canonical_rows, lineage_columns
from schemas.adapters.messages import (
    Reject,
    Rejections,
    load_json_object,
    screen,
    to_float,
    to_int,
    to_text,
)
from schemas.adapters.normalize import epoch_to_micros, implausible_times
from schemas.adapters.ripe_bulk import bulk_pings
from schemas.adapters.ripe_hops import summarize_hops
from schemas.adapters.ripe_targets import published_target
from schemas.model import TelemetrySchema
from schemas.network import LINK_KPI_V1, MEASUREMENT_PROTOCOLS, PATH_TRACE_V1

WIRE_FORMAT = "ripe.atlas.result"
_PING = ("link_id", "seconds", "node_id", "peer", "protocol", "address_family", "packets_sent")
_PING += ("packets_received", "latency_ms", "latency_min_ms", "latency_max_ms", "jitter_ms")
_PING += ("loss_pct",)
_TRACE = ("trace_id", "seconds", "node_id", "target", "protocol", "address_family", "hop_count")
_TRACE += ("reached", "final_rtt_ms", "hop_rtt_ms", "timeouts")
_TYPES = {
    "link_id": pa.string(),
    "trace_id": pa.string(),
    "node_id": pa.string(),
    "peer": pa.string(),
    "target": pa.string(),
    "protocol": pa.string(),
    "reached": pa.bool_(),
    "hop_rtt_ms": pa.list_(pa.float64()),
    "seconds": pa.float64(),
}
_INTEGERS = ("address_family", "packets_sent", "packets_received", "hop_count", "timeouts")


class RipeAtlasAdapter:
    """Decodes RIPE Atlas ping and traceroute results into link_kpi and path_trace rows."""

    wire_format = WIRE_FORMAT
    schemas: tuple[TelemetrySchema, ...] = (LINK_KPI_V1, PATH_TRACE_V1)

    bulk = True  # the Arrow path for current-firmware pings; off, every message one by one

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        rejected = Rejections()
        values = raw.column("value")
        taken, bulk_columns = bulk_pings(values) if self.bulk else (pa.array([], pa.int64()), {})
        rest = pc.filter(
            pa.array(range(len(values)), pa.int64()),
            pc.invert(pc.is_in(pa.array(range(len(values)), pa.int64()), value_set=taken)),
        ).to_pylist()
        found: dict[str, tuple[list[tuple], list[int]]] = {"ping": ([], []), "trace": ([], [])}
        for local, value in screen(values.take(pa.array(rest, pa.int64())), rejected):
            try:
                kind, row = result_row(load_json_object(value))
            except Reject as reject:
                rejected.add(local, reject.code, reject.reason)
                continue
            rows, index = found[kind]
            rows.append(row)
            index.append(rest[local])
        rejected.positions = [rest[local] for local in rejected.positions]  # to raw positions
        parts = []
        for kind, schema, slots in (("ping", LINK_KPI_V1, _PING), ("trace", PATH_TRACE_V1, _TRACE)):
            rows, index = found[kind]
            columns = _columns(slots, rows)
            positions = pa.array(index, pa.int64())
            if kind == "ping" and len(taken):
                columns = {s: pa.concat_arrays([bulk_columns[s], c]) for s, c in columns.items()}
                positions = pa.concat_arrays([taken, positions])
            if len(positions):
                part = _part(raw, schema, columns, positions, rejected)
                if part is not None:
                    parts.append(part)
        return rejected.result(tuple(parts))


def _columns(slots: tuple[str, ...], rows: list[tuple]) -> dict[str, pa.Array]:
    columns = zip(*rows, strict=True) if rows else ([] for _ in slots)
    return {
        slot: pa.array(values, _TYPES.get(slot, pa.int64() if slot in _INTEGERS else pa.float64()))
        for slot, values in zip(slots, columns, strict=True)
    }


def _part(
    raw: pa.RecordBatch,
    schema: TelemetrySchema,
    columns: dict[str, Any],
    index: pa.Array,
    rejected: Rejections,
) -> DecodedRows | None:
    columns = dict(columns)
    seconds = columns.pop("seconds")
    columns["event_time"] = epoch_to_micros(seconds, "s")
    bad = implausible_times(seconds, columns["event_time"])
    if schema is LINK_KPI_V1:
        columns["link_type"] = pa.array(["internet_path"] * len(index), pa.string())
    batch = canonical_rows(schema, columns | lineage_columns(raw, index), len(index))
    if pc.any(bad).as_py():
        for position, value in zip(
            pc.filter(index, bad).to_pylist(), pc.filter(seconds, bad).to_pylist(), strict=True
        ):
            message = f"timestamp={value:g} s is outside 2000-01-01..2100-01-01"
            rejected.add(position, "bad_timestamp", message)
        keep = pc.invert(bad)
        batch, index = batch.filter(keep), pc.filter(index, keep)
    return DecodedRows(schema, batch, index) if len(index) else None


def looks_like(value: bytes) -> bool:
    """Content sniff over the whole message (a traceroute may name its measurement after a long
    hop list): a JSON object with RIPE Atlas's probe and measurement ids."""
    return value.lstrip()[:1] == b"{" and b'"prb_id"' in value and b'"msm_id"' in value


def result_row(document: dict) -> tuple[str, tuple]:
    """("ping" | "trace", the row's slot values) of one RIPE Atlas result."""
    kind = _kind(document)
    probe = to_int(document.get("prb_id"), "prb_id")
    measurement = to_int(document.get("msm_id"), "msm_id")
    path_id = None
    if probe is not None and measurement is not None:
        path_id = f"ripe-msm-{measurement}-prb-{probe}"
    node = f"ripe-probe-{probe}" if probe is not None else None
    seconds = to_float(_first(document, "timestamp", "endtime"), "timestamp")
    address = to_text(_first(document, "dst_addr", "addr", "address"), "dst_addr")
    named = to_text(_first(document, "dst_name", "name"), "dst_name") or address
    target = published_target(document, named, address)  # the probe's own network: generalized
    family = _address_family(document, address)
    protocol = _protocol(document, "icmp" if kind == "ping" else "udp")
    if kind == "ping":
        return kind, (path_id, seconds, node, target, protocol, family, *_ping(document))
    hops = summarize_hops(document.get("result"), address)
    summary = (hops.hop_count, hops.reached, hops.final_rtt_ms, hops.hop_rtt_ms, hops.timeouts)
    return "trace", (path_id, seconds, node, target, protocol, family, *summary)


def _first(document: dict, *names: str) -> Any:
    for name in names:
        value = document.get(name)
        if value is not None and value != "":
            return value
    return None


def _kind(document: dict) -> str:
    declared = _first(document, "type", "msm_name")
    if declared is not None:
        declared = to_text(declared, "type").lower()
        if declared in ("ping", "traceroute"):
            return "ping" if declared == "ping" else "trace"
        raise Reject("unknown_kind", f"RIPE Atlas {declared} results are not mapped")
    result = document.get("result")
    if type(result) is str or (type(result) is list and result and _is_hop(result[0])):
        return "trace"
    if any(name in document for name in ("sent", "rcvd", "avg")):
        return "ping"
    raise Reject("unknown_kind", "neither a ping nor a traceroute result")


def _is_hop(entry: Any) -> bool:
    return type(entry) is dict and "hop" in entry


def _address_family(document: dict, address: str | None) -> int | None:
    family = to_int(_first(document, "af", "pf"), "af")
    if family is not None:
        return family
    mode = document.get("mode")
    if type(mode) is str and mode[-1:] in ("4", "6"):
        return int(mode[-1])
    if address:
        return 6 if ":" in address else 4
    return None


def _protocol(document: dict, default: str) -> str:
    declared = _first(document, "proto", "mode")
    if declared is None:
        return default
    name = to_text(declared, "proto").lower().rstrip("46")
    return name if name in MEASUREMENT_PROTOCOLS else "other"


def _ping(document: dict) -> tuple:
    """(sent, received, avg, min, max, jitter, loss %) of a ping result."""
    sent = to_int(document.get("sent"), "sent")
    received = to_int(document.get("rcvd"), "rcvd")
    avg, low, high = (_rtt(document.get(name), name) for name in ("avg", "min", "max"))
    rtts = []
    results = document.get("result") or []
    if type(results) is not list:
        raise Reject("wrong_type", "result must be a list")
    for number, reply in enumerate(results):
        if type(reply) is not dict:
            raise Reject("wrong_type", f"result[{number}] must be an object")
        if "rtt" in reply and "dup" not in reply:
            rtt = to_float(reply["rtt"], f"result[{number}].rtt")
            if rtt is not None:
                rtts.append(rtt)
    jitter = None
    if len(rtts) > 1:
        jitter = sum(abs(b - a) for a, b in pairwise(rtts)) / (len(rtts) - 1)
    loss = None
    if sent and received is not None:
        loss = (sent - received) / sent * 100
    return sent, received, avg, low, high, jitter, loss


def _rtt(value: Any, name: str) -> float | None:
    rtt = to_float(value, name)
    return None if rtt == -1 else rtt  # RIPE Atlas writes -1 when nothing answered
