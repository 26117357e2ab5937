"""A differentially private aggregate of the sessions: subscribers per cell and hour, noised.

Per chunk, the distinct subscribers (IMSIs) with a session starting in each cell and hour are
counted — one subscriber changes a count by at most 1 (sensitivity 1) — and Laplace noise of
scale 1/epsilon is added: each released count is epsilon-differentially private (delta = 0).
A subscriber present in several cells, hours or chunks is in several counts, and the epsilons
add up (basic composition); the manifest records epsilon per count. Rounding and clamping at
zero are post-processing and cost no privacy.

The noise must be secret yet reproducible (a redone batch must give the same bytes): each
count's uniform draw is an HMAC under the epoch key of the count's cell, hour and chunk.
"""

from __future__ import annotations

import hmac
import math

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.anonymize import PseudonymKey
from schemas.aggregates import SESSION_COUNTS_DP_V1
from schemas.published import PrivacySettings, published_schema

DATASET = SESSION_COUNTS_DP_V1.dataset
SOURCE_DATASET = "subscriber_session.v1"


def laplace(uniform: float, scale: float) -> float:
    """The Laplace(0, scale) quantile of ``uniform`` in (0, 1)."""
    centered = uniform - 0.5
    return -scale * math.copysign(1.0, centered) * math.log(1 - 2 * abs(centered))


def session_counts(
    sessions: pa.RecordBatch, key: PseudonymKey, settings: PrivacySettings
) -> pa.RecordBatch:
    """The noisy per-cell hourly subscriber counts of canonical session rows (one chunk)."""
    target = published_schema(SESSION_COUNTS_DP_V1, settings)
    if not sessions.num_rows:
        return pa.RecordBatch.from_pylist([], schema=target.arrow_schema())
    groups = _distinct_subscribers_per_cell_hour(sessions)
    noisy = _noisy_counts(groups, key, settings)
    n = groups.num_rows
    columns = {
        "cell_id": groups.column("cell_id"),
        "hour": groups.column("hour"),
        "noisy_subscribers": pa.array(noisy, pa.int64()),
        "quality_flags": pa.nulls(n, pa.string()),
        "source_topic": groups.column("source_topic_min"),
        "source_partition": groups.column("source_partition_min"),
        "source_offset": groups.column("source_offset_min"),
        # Floored like the sessions' own ingest times: an arrival time would date the sessions.
        "ingest_time": pc.floor_temporal(groups.column("ingest_time_max"), unit="hour"),
    }
    arrays = [_array(columns[f.name]).cast(f.type) for f in target.all_fields]
    return pa.RecordBatch.from_arrays(arrays, schema=target.arrow_schema())


def _distinct_subscribers_per_cell_hour(sessions: pa.RecordBatch) -> pa.Table:
    """Per (cell, hour): distinct subscribers, and the first source and latest ingest time."""
    hours = pc.floor_temporal(sessions.column("session_start"), unit="hour")
    table = pa.table(
        {
            "cell_id": sessions.column("cell_id"),
            "hour": hours,
            "imsi": sessions.column("imsi"),
            "source_topic": sessions.column("source_topic"),
            "source_partition": sessions.column("source_partition"),
            "source_offset": sessions.column("source_offset"),
            "ingest_time": sessions.column("ingest_time"),
        }
    )
    groups = table.group_by(["cell_id", "hour"], use_threads=False).aggregate(
        [
            ("imsi", "count_distinct"),
            ("source_topic", "min"),
            ("source_partition", "min"),
            ("source_offset", "min"),
            ("ingest_time", "max"),
        ]
    )
    groups = groups.sort_by([("cell_id", "ascending"), ("hour", "ascending")])
    return groups


def _noisy_counts(groups: pa.Table, key: PseudonymKey, settings: PrivacySettings) -> list[int]:
    """Each group's count plus Laplace noise drawn from a keyed hash of the group (repeatable)."""
    scale = 1.0 / settings.dp_epsilon
    noisy = []
    for cell, hour, count, topic, partition, offset in zip(
        groups.column("cell_id").to_pylist(),
        pc.cast(groups.column("hour"), pa.int64()).to_pylist(),
        groups.column("imsi_count_distinct").to_pylist(),
        groups.column("source_topic_min").to_pylist(),
        groups.column("source_partition_min").to_pylist(),
        groups.column("source_offset_min").to_pylist(),
        strict=True,
    ):
        epoch_key = key.epoch_key(hour // (settings.epoch_seconds * 1_000_000))
        label = f"dp-noise|{topic}|{partition}|{offset}|{cell}|{hour}".encode()
        draw = int.from_bytes(hmac.digest(epoch_key, label, "sha256")[:8], "big")
        uniform = (draw + 0.5) / 2**64  # strictly inside (0, 1)
        noisy.append(max(0, round(count + laplace(uniform, scale))))
    return noisy


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
