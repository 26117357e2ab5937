"""Aggregate datasets derived from personal data with differential privacy."""

from __future__ import annotations

import pyarrow as pa

from schemas.fields import cell_id, event_time
from schemas.model import Field, TelemetrySchema

SESSION_COUNTS_DP_V1 = TelemetrySchema(
    name="session_counts_dp",
    major=1,
    minor=0,
    description=(
        "Subscribers with a session per cell and hour, with calibrated Laplace noise "
        "(epsilon-differential privacy; epsilon, delta and the per-subscriber budget in each "
        "manifest). One row per cell and event-time window, released when the window closes."
    ),
    natural_key=("cell_id", "hour", "source_partition", "source_offset"),
    fields=(
        cell_id("Serving cell (28-bit ECI)"),
        event_time("Hour (event-time window) in which the sessions ended", name="hour"),
        Field(
            "noisy_subscribers",
            pa.int64(),
            "Distinct subscribers with a session in this cell and hour (each counted in a bounded "
            "number of cells per hour, within a daily budget), plus Laplace noise of scale "
            "1/epsilon, rounded and clamped at zero",
            required=True,
            minimum=0,
        ),
    ),
)
