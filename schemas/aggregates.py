"""Aggregate datasets derived from personal data with differential privacy."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from schemas.fields import cell_id, event_time
from schemas.model import LINEAGE_FIELDS, Field, TelemetrySchema


def _lineage(**descriptions: str) -> tuple[Field, ...]:
    return tuple(
        replace(f, description=descriptions[f.name]) if f.name in descriptions else f
        for f in LINEAGE_FIELDS
    )


SESSION_COUNTS_DP_V1 = TelemetrySchema(
    name="session_counts_dp",
    major=1,
    minor=0,
    description=(
        "Subscribers with a session per cell and hour, with calibrated Laplace noise "
        "((epsilon, delta)-differential privacy; epsilon, delta, the release threshold and the "
        "per-subscriber budget in each manifest). One row per cell and event-time window whose "
        "noisy count reaches the threshold, released when the window closes."
    ),
    natural_key=("cell_id", "hour", "source_partition", "source_offset"),
    # A row comes from no one record, and a session's offset or arrival time would date it.
    lineage=_lineage(
        source_partition="Kafka partition whose sessions were counted",
        source_offset="Always 0: a row is counted from many records and names none",
        ingest_time="The window's hour (the sessions' own arrival times would date them)",
    ),
    fields=(
        cell_id("Serving cell (28-bit ECI)"),
        event_time("Hour (event-time window) in which the sessions ended", name="hour"),
        Field(
            "noisy_subscribers",
            pa.int64(),
            "Distinct subscribers with a session in this cell and hour (each counted in a bounded "
            "number of cells per hour, within a daily budget), plus Laplace noise of scale "
            "1/epsilon, rounded and clamped at zero; a cell is released only when this noisy "
            "count reaches the manifest's threshold tau",
            required=True,
            minimum=0,
        ),
    ),
)
