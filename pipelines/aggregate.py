"""A differentially private aggregate of the sessions: subscribers per cell and hour, noised.

Released once per closed event-time window (an hour: the sessions that *ended* in it), never per
batch: for each cell, the distinct subscribers counted in it — one subscriber changes a count by
at most 1 (sensitivity 1) — plus Laplace noise of scale 1/epsilon, rounded and clamped at zero
(post-processing, free).

Which cells get a row is decided by DP partition selection, not by the data alone: a row that
appears whenever a cell had a session would say "someone was here" whatever the noise. The
candidates are the cells with at least one *counted* subscriber (one left out by the bounds below
makes none); a candidate is released only if its noisy count — the same Laplace draw as the
released value — reaches ``partition_threshold`` (tau: Laplace thresholding, as in Google's
differential-privacy library). A cell whose one counted subscriber is one person is released with
probability delta_1 = 1 - (1 - delta)^(1/m) at most, m = ``dp_max_counts_per_window``. So each
window's release is (m * epsilon, delta)-DP for each subscriber: epsilon per cell counted in, plus
the chance delta that one of their at most m lone cells shows up. The rows carry nothing of the
sessions but those counts: ``source_partition`` is the scope's partition, ``source_offset`` 0 and
``ingest_time`` the window's hour, the same whatever the sessions were.

The privacy budget is accounted per subscriber over time, in a private ledger:

* per window, a subscriber is counted in at most ``dp_max_counts_per_window`` cells (those of
  their earliest sessions in stream order), so one window costs them at most that many epsilons
  (and delta);
* per key epoch (a day), a subscriber spends at most ``dp_budget_per_epoch``: once a count would
  exceed it, they are left out of further counts that epoch (basic sequential composition:
  epsilons and deltas add up, so a subscriber's total loss over the dataset is at most the
  budget, and delta_1 per count, times the epochs it covers). The manifest states the bounds.

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


def partition_threshold(settings: PrivacySettings) -> float:
    """tau: the noisy count a candidate cell must reach for its row to be released.

    Laplace thresholding (Korolova et al. 2009; Wilson et al. 2020), with the threshold of
    Google's differential-privacy library (``LaplacePartitionSelection::CalculateThreshold``):
    a subscriber is counted in at most m = ``dp_max_counts_per_window`` cells, each count's
    noise has scale b = 1/epsilon (the library's m / epsilon for its total epsilon, m * ours),
    and delta_1 = 1 - (1 - delta)^(1/m) is the chance one cell counting one person alone may be
    released, so that all m of theirs stay hidden with probability 1 - delta:

        tau = 1 - b * ln(2 * delta_1)          (delta_1 <= 1/2)
        tau = 1 + b * ln(2 * (1 - delta_1))    (delta_1 > 1/2)

    P[1 + Laplace(b) >= tau] = delta_1. With the defaults (epsilon 1, m 1, delta 1e-6):
    tau = 1 + ln(500000) ~ 14.12.
    """
    if not settings.dp_epsilon > 0:
        raise ValueError(f"dp_epsilon must be positive, not {settings.dp_epsilon}")
    per_cell = per_cell_delta(settings)
    scale = 1.0 / settings.dp_epsilon
    if per_cell <= 0.5:
        return 1 - scale * math.log(2 * per_cell)
    return 1 + scale * math.log(2 * (1 - per_cell))


def per_cell_delta(settings: PrivacySettings) -> float:
    """delta_1 = 1 - (1 - delta)^(1/m): the chance a cell counting one subscriber alone is
    released, so that none of their m cells of a window is with probability 1 - delta."""
    delta, m = settings.dp_delta, settings.dp_max_counts_per_window
    if not 0 < delta < 1:
        raise ValueError(f"dp_delta must be in (0, 1), not {delta}")
    if m < 1:
        raise ValueError(f"dp_max_counts_per_window must be at least 1, not {m}")
    return -math.expm1(math.log1p(-delta) / m)  # numerically stable for a small delta


def max_counts_per_epoch(settings: PrivacySettings) -> int:
    """The counts one subscriber can be in per key epoch: those their budget affords."""
    return math.floor(settings.dp_budget_per_epoch / settings.dp_epsilon + 1e-9)


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
    Only the cells whose noisy count reaches ``partition_threshold`` get a row; its lineage is
    the scope's (partition, or 0 for a whole topic), offset 0 and the window's hour.
    """
    target = published_schema(SESSION_COUNTS_DP_V1, settings).arrow_schema()
    tau = partition_threshold(settings)
    if not sessions.num_rows:
        return target.empty_table(), ledger
    epoch = window_us // (settings.epoch_seconds * 1_000_000)
    counted, ledger = _bounded_contributions(sessions, epoch, settings, ledger)
    cells = _cells(sessions, counted)
    noisy = _noisy(cells, window_us, epoch, scope or topic, key, settings)
    released = noisy >= tau
    cells = cells.filter(pa.array(released, pa.bool_()))
    n = cells.num_rows
    hour = pa.array(np.full(n, window_us, np.int64)).cast(pa.timestamp("us", tz="UTC"))
    columns = {
        "cell_id": cells.column("cell_id"),
        "hour": hour,
        # Rounded half to even (as Python's round), clamped at 0 (a tau below 1/2 lets it be).
        "noisy_subscribers": pa.array(np.maximum(0, np.rint(noisy[released])).astype(np.int64)),
        "quality_flags": pa.nulls(n, pa.string()),
        "source_topic": pa.array([topic] * n, pa.string()),
        # Nothing of the sessions: the scope's partition, a constant offset (the natural key
        # stays unique: one row per cell and hour), the window's own hour as the ingest time.
        "source_partition": pa.array(np.full(n, _scope_partition(scope), np.int32)),
        "source_offset": pa.array(np.zeros(n, np.int64)),
        "ingest_time": hour,
    }
    arrays = [_array(columns[f.name]).cast(f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target), ledger


def _scope_partition(scope: str | None) -> int:
    """The partition of ``<topic>/p<partition>``; 0 for counts over a whole topic (several
    partitions at once: no one of them, and nothing the sessions decide)."""
    if scope is None:
        return 0
    _, sep, partition = scope.rpartition("/p")  # a Kafka topic name has no "/"
    return int(partition) if sep and partition.isdigit() else 0


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
    """The candidate cells: those with a counted subscriber, each with how many (distinct), in
    cell order. A session whose subscriber is not counted makes no candidate."""
    table = pa.table(
        {"cell_id": sessions.column("cell_id"), "subscriber": sessions.column(SUBSCRIBER)}
    ).filter(pa.array(counted, pa.bool_()))
    groups = table.group_by("cell_id", use_threads=False).aggregate(
        [("subscriber", "count_distinct", pc.CountOptions(mode="only_valid"))]
    )
    return groups.rename_columns(["cell_id", "subscribers"]).sort_by("cell_id")


def _noisy(
    cells: pa.Table,
    window_us: int,
    epoch: int,
    topic: str,
    key: PseudonymKey,
    settings: PrivacySettings,
) -> np.ndarray:
    """Each count plus Laplace noise drawn from a keyed hash of (topic, cell, window), unrounded:
    the one draw both decides the release and is the released value."""
    scale = 1.0 / settings.dp_epsilon
    epoch_key = key.epoch_key(epoch)
    noisy = np.empty(cells.num_rows, np.float64)
    for i, (cell, count) in enumerate(
        zip(
            cells.column("cell_id").to_pylist(),
            cells.column("subscribers").to_pylist(),
            strict=True,
        )
    ):
        label = f"dp-noise|{topic}|{cell}|{window_us}".encode()
        draw = int.from_bytes(hmac.digest(epoch_key, label, "sha256")[:8], "big")
        uniform = (draw + 0.5) / 2**64  # strictly inside (0, 1)
        noisy[i] = count + laplace(uniform, scale)
    return noisy


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
