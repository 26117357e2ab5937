"""A differentially private aggregate of the sessions: subscribers per cell and hour, noised.

Released once per closed event-time window (an hour: the sessions that *ended* in it), never per
batch: for each cell, the distinct subscribers with a session in the window — one subscriber
changes a count by at most 1 (sensitivity 1) — plus Laplace noise of scale 1/epsilon, rounded
and clamped at zero (post-processing, free). Each released count is epsilon-DP with delta 0.

The privacy budget is accounted per subscriber over time, in a private ledger:

* per window, a subscriber is counted in at most ``dp_max_counts_per_window`` cells (those of
  their earliest sessions in stream order), so one window costs them at most that many epsilons;
* per key epoch (a day), a subscriber spends at most ``dp_budget_per_epoch``: once a count would
  exceed it, they are left out of further counts that epoch (basic sequential composition:
  epsilons add up, so a subscriber's total loss over the dataset is at most the budget times the
  epochs it covers). The manifest states both bounds.

The noise is secret yet reproducible (a redone batch must give the same bytes): each count's
uniform draw is an HMAC under the epoch key of (topic or topic/partition, cell, window).
"""

from __future__ import annotations

import hmac
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.anonymize import PseudonymKey
from pipelines.staged import SUBSCRIBER
from schemas.aggregates import SESSION_COUNTS_DP_V1
from schemas.published import PrivacySettings, published_schema

DATASET = SESSION_COUNTS_DP_V1.dataset
SOURCE_DATASET = "subscriber_session.v1"
LEDGER_SCHEMA = pa.schema(
    [("subscriber", pa.string()), ("epoch", pa.int64()), ("spent", pa.float64())]
)


def laplace(uniform: float, scale: float) -> float:
    """The Laplace(0, scale) quantile of ``uniform`` in (0, 1)."""
    centered = uniform - 0.5
    return -scale * math.copysign(1.0, centered) * math.log(1 - 2 * abs(centered))


def empty_ledger() -> pa.Table:
    return LEDGER_SCHEMA.empty_table()


def window_counts(
    sessions: pa.Table,
    window_us: int,
    topic: str,
    key: PseudonymKey,
    settings: PrivacySettings,
    ledger: pa.Table,
    scope: str | None = None,
) -> tuple[pa.Table, pa.Table]:
    """The noisy per-cell subscriber counts of one closed window, and the ledger after them.

    ``sessions``: the window's staged session rows that passed the quality checks (those that
    k-anonymity withholds included: the noise protects them), with their ``_subscriber``.
    ``scope``: what the noise is drawn for (default the topic; one partition's counts are drawn
    for ``<topic>/p<partition>``, so two partitions' counts of a cell never share their noise).
    """
    target = published_schema(SESSION_COUNTS_DP_V1, settings).arrow_schema()
    if not sessions.num_rows:
        return target.empty_table(), ledger
    epoch = window_us // (settings.epoch_seconds * 1_000_000)
    counted, ledger = _bounded_contributions(sessions, epoch, settings, ledger)
    cells = _cells(sessions, counted)
    noisy = _noisy(cells, window_us, epoch, scope or topic, key, settings)
    n = cells.num_rows
    columns = {
        "cell_id": cells.column("cell_id"),
        "hour": pa.array([window_us] * n, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "noisy_subscribers": pa.array(noisy, pa.int64()),
        "quality_flags": pa.nulls(n, pa.string()),
        "source_topic": pa.array([topic] * n, pa.string()),
        "source_partition": cells.column("source_partition"),
        "source_offset": cells.column("source_offset"),
        # The sessions' own ingest times are floored to the hour: an arrival time would date them.
        "ingest_time": cells.column("ingest_time"),
    }
    arrays = [_array(columns[f.name]).cast(f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target), ledger


def _bounded_contributions(
    sessions: pa.Table, epoch: int, settings: PrivacySettings, ledger: pa.Table
) -> tuple[np.ndarray, pa.Table]:
    """Per session, whether its subscriber is counted in its cell; the ledger after spending.

    Each subscriber's cells are taken in the order of their first session (stream order), up to
    the per-window bound and while their epoch budget lasts.
    """
    order = pc.sort_indices(
        sessions, [("source_partition", "ascending"), ("source_offset", "ascending")]
    )
    subscribers = sessions.column(SUBSCRIBER).take(order).to_pylist()
    cells = sessions.column("cell_id").take(order).to_pylist()
    mine = ledger.filter(pc.equal(ledger.column("epoch"), epoch))
    spent = dict(
        zip(mine.column("subscriber").to_pylist(), mine.column("spent").to_pylist(), strict=True)
    )
    chosen: dict[str, set[int]] = {}
    counted = np.zeros(sessions.num_rows, bool)
    for position, subscriber, cell in zip(np.asarray(order), subscribers, cells, strict=True):
        theirs = chosen.setdefault(subscriber, set())
        if cell not in theirs:
            within_window = len(theirs) < settings.dp_max_counts_per_window
            affordable = (
                spent.get(subscriber, 0.0) + settings.dp_epsilon <= settings.dp_budget_per_epoch
            )
            if not (within_window and affordable):
                continue
            theirs.add(cell)
            spent[subscriber] = spent.get(subscriber, 0.0) + settings.dp_epsilon
        counted[position] = True
    return counted, _ledger_after(ledger, epoch, spent)


def _ledger_after(ledger: pa.Table, epoch: int, spent: dict[str, float]) -> pa.Table:
    """Entries of this epoch replaced; epochs two or more before it forgotten (budgets reset)."""
    older = ledger.filter(
        pc.and_(
            pc.less(ledger.column("epoch"), epoch),
            pc.greater_equal(ledger.column("epoch"), epoch - 1),
        )
    )
    later = ledger.filter(pc.greater(ledger.column("epoch"), epoch))
    names = sorted(spent)
    now = pa.table(
        {
            "subscriber": pa.array(names, pa.string()),
            "epoch": pa.array([epoch] * len(names), pa.int64()),
            "spent": pa.array([spent[n] for n in names], pa.float64()),
        },
        schema=LEDGER_SCHEMA,
    )
    return pa.concat_tables([older, now, later]).sort_by(
        [("epoch", "ascending"), ("subscriber", "ascending")]
    )


def _cells(sessions: pa.Table, counted: np.ndarray) -> pa.Table:
    """Per cell with a session in the window: counted distinct subscribers, first source, latest
    (hour-floored) ingest time."""
    table = pa.table(
        {
            "cell_id": sessions.column("cell_id"),
            "subscriber": pc.if_else(
                pa.array(counted), sessions.column(SUBSCRIBER), pa.scalar(None, pa.string())
            ),
            "source_partition": sessions.column("source_partition"),
            "source_offset": sessions.column("source_offset"),
            "ingest_time": sessions.column("ingest_time"),
        }
    ).sort_by(
        [
            ("cell_id", "ascending"),
            ("source_partition", "ascending"),
            ("source_offset", "ascending"),
        ]
    )
    groups = table.group_by("cell_id", use_threads=False).aggregate(
        [
            ("subscriber", "count_distinct", pc.CountOptions(mode="only_valid")),
            ("source_partition", "first"),
            ("source_offset", "first"),
            ("ingest_time", "max"),
        ]
    )
    groups = groups.rename_columns(
        ["cell_id", "subscribers", "source_partition", "source_offset", "ingest_time"]
    )
    return groups.sort_by("cell_id")


def _noisy(
    cells: pa.Table,
    window_us: int,
    epoch: int,
    topic: str,
    key: PseudonymKey,
    settings: PrivacySettings,
) -> list[int]:
    """Each count plus Laplace noise drawn from a keyed hash of (topic, cell, window)."""
    scale = 1.0 / settings.dp_epsilon
    epoch_key = key.epoch_key(epoch)
    noisy = []
    for cell, count in zip(
        cells.column("cell_id").to_pylist(), cells.column("subscribers").to_pylist(), strict=True
    ):
        label = f"dp-noise|{topic}|{cell}|{window_us}".encode()
        draw = int.from_bytes(hmac.digest(epoch_key, label, "sha256")[:8], "big")
        uniform = (draw + 0.5) / 2**64  # strictly inside (0, 1)
        noisy.append(max(0, round(count + laplace(uniform, scale))))
    return noisy


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
