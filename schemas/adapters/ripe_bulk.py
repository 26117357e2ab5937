"""RIPE Atlas ping results in bulk: Arrow's JSON reader and ``pyarrow.compute``.

The bulk path takes current-firmware pings only — ``"type": "ping"``, numbers as JSON numbers,
``af``, ``proto``, ``dst_name``, ``timestamp``, ``prb_id`` and ``msm_id`` all present — which is
what today's feeds carry. Older firmware shapes, traceroutes and anything unusual go to the
adapter's message-by-message path; a test holds the two paths to the same rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from schemas.adapters.json_blocks import one_line_objects, parse_objects
from schemas.adapters.ripe_targets import PROBE_ADDRESSES, own_network_mask
from schemas.network import MEASUREMENT_PROTOCOLS

_REPLY = pa.struct(
    [("rtt", pa.float64()), ("x", pa.string()), ("dup", pa.int64()), ("error", pa.string())]
)
_OPTIONS = pajson.ParseOptions(
    explicit_schema=pa.schema(
        [
            ("type", pa.string()),
            ("prb_id", pa.int64()),
            ("msm_id", pa.int64()),
            ("timestamp", pa.int64()),
            ("dst_name", pa.string()),
            ("af", pa.int64()),
            ("proto", pa.string()),
            ("sent", pa.int64()),
            ("rcvd", pa.int64()),
            ("avg", pa.float64()),
            ("min", pa.float64()),
            ("max", pa.float64()),
            ("result", pa.list_(_REPLY)),
            ("dst_addr", pa.string()),
            ("from", pa.string()),
            ("src_addr", pa.string()),
            ("srcaddr", pa.string()),
        ]
    ),
    unexpected_field_behavior="ignore",
    newlines_in_values=False,
)
_REQUIRED = ("type", "prb_id", "msm_id", "timestamp", "dst_name", "af", "proto")


def bulk_pings(values: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
    """(raw positions taken, link_kpi slot columns) for the pings the bulk path can take."""
    everything = pa.array(range(len(values)), pa.int64())
    fit = pc.filter(everything, one_line_objects(values, "{"))
    positions, table = parse_objects(values, fit, _OPTIONS)
    if table is None:
        return pa.array([], pa.int64()), {}
    ok = pc.equal(table.column("type"), "ping")
    for name in _REQUIRED[1:]:
        ok = pc.and_(ok, pc.is_valid(table.column(name)))
    ok = pc.and_(ok, pc.not_equal(table.column("dst_name"), ""))
    ok = pc.and_(ok, _no_null_replies(table.column("result").combine_chunks()))
    ok = pc.and_(ok, pc.not_equal(table.column("proto"), ""))
    # A target in the probe's own network is generalized, message by message (ripe_targets).
    targets = [_whole(table.column(name)) for name in ("dst_name", "dst_addr")]
    probes = [_whole(table.column(name)) for name in PROBE_ADDRESSES]
    ok = pc.and_(ok, pc.invert(own_network_mask(targets, probes)))
    ok = _whole(pc.fill_null(ok, False))
    table, positions = table.filter(ok), pc.filter(positions, ok)
    probe = table.column("prb_id").cast(pa.string())
    measurement = table.column("msm_id").cast(pa.string())
    protocol = pc.utf8_rtrim(pc.utf8_lower(table.column("proto")), "46")
    known = pc.is_in(protocol, value_set=pa.array(MEASUREMENT_PROTOCOLS))
    sent, received = table.column("sent"), table.column("rcvd")
    losable = pc.and_(pc.not_equal(sent, 0), pc.is_valid(received))
    lost = pc.divide(pc.subtract(sent.cast(pa.float64()), received.cast(pa.float64())), sent)
    columns = {
        "link_id": pc.binary_join_element_wise("ripe-msm-", measurement, "-prb-", probe, ""),
        "seconds": table.column("timestamp").cast(pa.float64()),
        "node_id": pc.binary_join_element_wise("ripe-probe-", probe, ""),
        "peer": table.column("dst_name"),
        "protocol": pc.if_else(known, protocol, "other"),
        "address_family": table.column("af"),
        "packets_sent": sent,
        "packets_received": received,
        "latency_ms": _rtt(table.column("avg")),
        "latency_min_ms": _rtt(table.column("min")),
        "latency_max_ms": _rtt(table.column("max")),
        "jitter_ms": _jitter(table.column("result").combine_chunks()),
        "loss_pct": pc.if_else(pc.fill_null(losable, False), pc.multiply(lost, 100), None),
    }
    return positions, {name: _whole(column) for name, column in columns.items()}


def _no_null_replies(results: pa.ListArray) -> pa.Array:
    """False for a result list holding a null reply: Arrow reads it, the message path refuses
    it (a reply is an object), so such results go message by message."""
    owners = pc.filter(pc.list_parent_indices(results), pc.is_null(pc.list_flatten(results)))
    return pc.invert(pc.is_in(pa.array(range(len(results)), pa.int64()), value_set=owners))


def _whole(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _rtt(values: pa.Array) -> pa.Array:
    """RIPE Atlas writes -1 when nothing answered: that is no RTT, not a negative one."""
    return pc.if_else(pc.fill_null(pc.equal(values, -1), False), None, values)


def _jitter(results: pa.ListArray) -> pa.Array:
    """Per result: mean absolute difference of successive RTTs (timeouts, errors, dups skipped)."""
    count = len(results)
    replies = pc.list_flatten(results)
    owner = pc.list_parent_indices(results).cast(pa.int64())
    answered = pc.and_(
        pc.is_valid(pc.struct_field(replies, "rtt")), pc.is_null(pc.struct_field(replies, "dup"))
    )
    rtt = pc.filter(pc.struct_field(replies, "rtt"), answered)
    owner = pc.filter(owner, answered)
    if len(rtt) < 2:
        return pa.nulls(count, pa.float64())
    same = pc.equal(owner.slice(1), owner.slice(0, len(owner) - 1))
    steps = pc.filter(pc.abs(pc.subtract(rtt.slice(1), rtt.slice(0, len(rtt) - 1))), same)
    pairs = pa.table({"owner": pc.filter(owner.slice(1), same), "step": steps})
    if not pairs.num_rows:
        return pa.nulls(count, pa.float64())
    means = pairs.group_by("owner", use_threads=False).aggregate(
        [("step", "sum"), ("step", "count")]
    )
    mean = pc.divide(means.column("step_sum"), means.column("step_count").cast(pa.float64()))
    slot = pc.index_in(pa.array(range(count), pa.int64()), value_set=means.column("owner"))
    return pc.take(mean, slot)
