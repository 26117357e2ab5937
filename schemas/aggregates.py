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
        "(epsilon-differential privacy; epsilon and delta in each manifest). One row per cell, "
        "hour and chunk of the session stream: sum the rows of a cell and hour for its total."
    ),
    natural_key=("cell_id", "hour", "source_partition", "source_offset"),
    fields=(
        cell_id("Serving cell (28-bit ECI)"),
        event_time("Hour in which the sessions started", name="hour"),
        Field(
            "noisy_subscribers",
            pa.int64(),
            "Distinct subscribers with a session in this cell and hour among the chunk's records, "
            "plus Laplace noise of scale 1/epsilon, rounded and clamped at zero",
            required=True,
            minimum=0,
        ),
    ),
)
