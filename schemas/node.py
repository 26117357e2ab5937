"""Node heartbeats: is the node up, how is it powered, where is it."""

from __future__ import annotations

import pyarrow as pa

from schemas.fields import DEVICE_FIELDS, NODE_ID, event_time, location
from schemas.model import Field, TelemetrySchema

NODE_STATUS = ("online", "degraded", "offline", "maintenance")
POWER_SOURCES = ("grid", "solar", "battery", "generator")
LOCATION_SOURCES = ("gps", "asserted", "skyhook", "unknown")

NODE_HEARTBEAT_V1 = TelemetrySchema(
    name="node_heartbeat",
    major=1,
    minor=1,  # 1.1 added the device signature fields
    description="Periodic liveness, power and location report of a node.",
    natural_key=("node_id", "event_time"),
    fields=(
        NODE_ID,
        event_time("When the node sent the heartbeat"),
        Field("status", pa.string(), "Operational status", required=True, allowed=NODE_STATUS),
        Field("uptime_s", pa.int64(), "Seconds since the node last booted", unit="s", minimum=0),
        Field("power_source", pa.string(), "What powers the site", allowed=POWER_SOURCES),
        Field(
            "battery_pct",
            pa.float64(),
            "Battery state of charge (solar and battery sites)",
            unit="%",
            minimum=0,
            maximum=100,
        ),
        Field(
            "temperature_c",
            pa.float64(),
            "Enclosure temperature",
            unit="°C",
            minimum=-50,
            maximum=100,
        ),
        Field("firmware", pa.string(), "Firmware version string"),
        *location("Node"),
        Field(
            "location_source",
            pa.string(),
            "How the location was obtained",
            allowed=LOCATION_SOURCES,
        ),
        *DEVICE_FIELDS,
    ),
)
