"""Backhaul and path telemetry: links (including to high-altitude relay platforms) and traces."""

from __future__ import annotations

import pyarrow as pa

from schemas.fields import DEVICE_FIELDS, event_time
from schemas.model import Field, TelemetrySchema

LINK_TYPES = ("fiber", "microwave", "satellite", "haps", "cellular", "internet_path")
MEASUREMENT_PROTOCOLS = ("icmp", "udp", "tcp", "twamp", "other")

LINK_KPI_V1 = TelemetrySchema(
    name="link_kpi",
    major=1,
    minor=1,  # 1.1 added the device signature fields
    description=(
        "Latency, jitter, loss and capacity of a backhaul link or a measured network path "
        "(a node's uplink, a link to a high-altitude platform, or a probe-to-target path)."
    ),
    natural_key=("link_id", "event_time"),
    fields=(
        Field(
            "link_id", pa.string(), "Stable identifier of the link or measured path", required=True
        ),
        event_time("When the measurement started"),
        Field("node_id", pa.string(), "Node or probe at the measuring end", required=True),
        Field("peer", pa.string(), "Far end: peer node, platform, or target host name/address"),
        Field("link_type", pa.string(), "Kind of link", required=True, allowed=LINK_TYPES),
        Field("protocol", pa.string(), "Measurement protocol", allowed=MEASUREMENT_PROTOCOLS),
        Field(
            "address_family",
            pa.int32(),
            "IP version of the measured path (4 or 6)",
            minimum=4,
            maximum=6,
        ),
        Field(
            "elevation_deg",
            pa.float64(),
            "Elevation angle towards the peer (HAPS/satellite)",
            unit="degrees",
            minimum=-90,
            maximum=90,
        ),
        Field("packets_sent", pa.int32(), "Probe packets sent", minimum=0, maximum=100000),
        Field("packets_received", pa.int32(), "Probe packets answered", minimum=0, maximum=100000),
        Field(
            "latency_ms", pa.float64(), "Mean round-trip time", unit="ms", minimum=0, maximum=100000
        ),
        Field(
            "latency_min_ms",
            pa.float64(),
            "Minimum round-trip time",
            unit="ms",
            minimum=0,
            maximum=100000,
        ),
        Field(
            "latency_max_ms",
            pa.float64(),
            "Maximum round-trip time",
            unit="ms",
            minimum=0,
            maximum=100000,
        ),
        Field(
            "jitter_ms",
            pa.float64(),
            "Round-trip time variation",
            unit="ms",
            minimum=0,
            maximum=100000,
        ),
        Field("loss_pct", pa.float64(), "Packet loss", unit="%", minimum=0, maximum=100),
        Field(
            "capacity_mbps",
            pa.float64(),
            "Link capacity",
            unit="Mbit/s",
            minimum=0,
            maximum=1000000,
        ),
        *DEVICE_FIELDS,
    ),
)

PATH_TRACE_V1 = TelemetrySchema(
    name="path_trace",
    major=1,
    minor=1,  # 1.1 added the device signature fields
    description="A traceroute: how many hops a path has, whether it reached its target, how fast.",
    natural_key=("trace_id", "event_time"),
    fields=(
        Field("trace_id", pa.string(), "Stable identifier of the traced path", required=True),
        event_time("When the trace started"),
        Field("node_id", pa.string(), "Node or probe that ran the trace", required=True),
        Field("target", pa.string(), "Target host name or address"),
        Field("protocol", pa.string(), "Probe protocol", allowed=MEASUREMENT_PROTOCOLS),
        Field("address_family", pa.int32(), "IP version (4 or 6)", minimum=4, maximum=6),
        Field("hop_count", pa.int32(), "Hops in the result", required=True, minimum=0, maximum=255),
        Field("reached", pa.bool_(), "Whether the target answered", required=True),
        Field(
            "final_rtt_ms",
            pa.float64(),
            "Best round-trip time of the last answering hop",
            unit="ms",
            minimum=0,
            maximum=100000,
        ),
        Field(
            "hop_rtt_ms",
            pa.list_(pa.float64()),
            "Best round-trip time per hop, in hop order (null where no reply)",
            unit="ms",
        ),
        Field("timeouts", pa.int32(), "Probe packets without an answer", minimum=0),
        *DEVICE_FIELDS,
    ),
)
