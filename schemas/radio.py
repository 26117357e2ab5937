"""Radio KPIs per cell, as reported by community-run 4G/5G nodes.

Ranges follow the Android telephony API and 3GPP (see DESIGN.md, "Domain reference").
"""

from __future__ import annotations

import pyarrow as pa

from schemas.fields import DEVICE_FIELDS, NODE_ID, cell_id, event_time, location
from schemas.model import Field, TelemetrySchema

RADIO_KPI_V1 = TelemetrySchema(
    name="radio_kpi",
    major=1,
    minor=2,  # 1.1 added prb_utilization_pct and band, 1.2 the device signature fields
    description="Per-cell radio and traffic KPIs reported periodically by each node.",
    natural_key=("node_id", "cell_id", "event_time"),
    fields=(
        NODE_ID,
        event_time("When the node measured the KPIs"),
        cell_id("E-UTRAN Cell Identifier (28-bit ECI)"),
        Field("pci", pa.int32(), "Physical Cell Identity", minimum=0, maximum=503),
        Field(
            "earfcn",
            pa.int32(),
            "E-UTRA Absolute Radio Frequency Channel Number",
            minimum=0,
            maximum=262143,
        ),
        Field("band", pa.string(), "E-UTRA/NR operating band, e.g. B3 or n78"),
        Field(
            "rsrp_dbm",
            pa.float64(),
            "Reference Signal Received Power",
            unit="dBm",
            required=True,
            minimum=-140,
            maximum=-43,
        ),
        Field(
            "rsrq_db",
            pa.float64(),
            "Reference Signal Received Quality",
            unit="dB",
            minimum=-34,
            maximum=3,
        ),
        Field(
            "sinr_db",
            pa.float64(),
            "Signal to Interference plus Noise Ratio",
            unit="dB",
            minimum=-20,
            maximum=30,
        ),
        Field(
            "dl_throughput_mbps",
            pa.float64(),
            "Downlink throughput served by the cell",
            unit="Mbit/s",
            minimum=0,
            maximum=2000,
        ),
        Field(
            "ul_throughput_mbps",
            pa.float64(),
            "Uplink throughput served by the cell",
            unit="Mbit/s",
            minimum=0,
            maximum=2000,
        ),
        Field(
            "latency_ms",
            pa.float64(),
            "Round-trip latency from the node to its core",
            unit="ms",
            minimum=0,
            maximum=10000,
        ),
        Field(
            "prb_utilization_pct",
            pa.float64(),
            "Downlink PRB utilization (RRU.PrbUsedDl / RRU.PrbTotDl)",
            unit="%",
            minimum=0,
            maximum=100,
        ),
        Field(
            "connected_ues",
            pa.int32(),
            "User equipments connected to the cell",
            required=True,
            minimum=0,
            maximum=10000,
        ),
        *location("Node"),
        *DEVICE_FIELDS,
    ),
)
