"""Closing an event-time window: what its held rows become (``pipelines/windows.py`` holds them).

Over every held row of the window — of the state's partitions (one, in ``rda run``: each
partition keeps its own state, streaming/event_time.py) — k-anonymity decides which sessions are
published (small quasi-identifier groups generalized first) and which records are withheld;
the window's DP counts are computed, the subscriber budget ledger charged; and the window's
quality figures, complete now, are final.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines import aggregate, staged
from pipelines.anonymize import PseudonymKey, concealed_offsets, k_anonymize
from pipelines.quality_counts import cell_counts, stats_of
from pipelines.windows import (
    HELD_RECORDS,
    Settings,
    TopicState,
    record_keys,
    record_of,
    stream_order,
)
from schemas.published import EPOCH_FIELD, PrivacySettings
from schemas.registry import schema_for_dataset
from validators.score import dataset_quality


@dataclass
class Release:
    published: dict[str, pa.Table]
    suppressed: list[tuple[int, int]]  # (partition, offset) of records k-anonymity withholds
    records: dict[str, int]  # published, suppressed (records)
    stats: dict[str, dict]
    figures: dict[str, dict]  # per dataset: the closed window's quality score and counts
    ledger: pa.Table


def release(
    state: TopicState,
    window: int,
    held: dict[str, pa.Table],
    settings: Settings,
    key: PseudonymKey,
    topic: str,
    ledger: pa.Table,
    scope: str | None = None,
    conceal: bool = True,
) -> Release:
    """Close ``window``: k-anonymity over its held rows, its DP counts, its final figures.
    ``conceal=False``: the released rows keep their Kafka offsets, for a caller that looks
    them up before it conceals them itself (``conceal_lineage``: a replay drops duplicates).
    """
    held = {d: stream_order(t) for d, t in sorted(held.items()) if t.num_rows}
    public, suppressed = _k_anonymous(held, settings.privacy)
    out = Release({}, [record_of(k) for k in sorted(suppressed)], {}, {}, {}, ledger)
    records: set[int] = set()
    for dataset, rows in held.items():
        keys = record_keys(rows)
        records |= set(keys.tolist())
        out_rows = public[dataset].filter(pa.array(~np.isin(keys, list(suppressed)), pa.bool_()))
        if conceal and staged.is_windowed(dataset):
            out_rows = conceal_lineage(out_rows, key)
        if out_rows.num_rows:
            out.published[dataset] = out_rows
        null_cells, cells = cell_counts(out_rows)
        # Not how many it withheld: an exact count per partition and hour says someone had a
        # rare session there, which the DP counts hide per cell (the count stays private:
        # ``records``, the suppressed store, ``rda status``).
        stats = {"null_cells": null_cells, "cells": cells}
        state.add(window, dataset, stats)
        out.stats[dataset] = stats_of(out_rows, **stats)
    sessions = held.get(aggregate.SOURCE_DATASET)
    if sessions is not None:
        counts, out.ledger = aggregate.window_counts(
            sessions, window, topic, key, settings.privacy, ledger, scope
        )
        null_cells, cells = cell_counts(counts)
        if counts.num_rows:
            out.published[aggregate.DATASET] = counts
        # A window whose cells all stayed below the release threshold closed too, and cost its
        # subscribers as much as one that released some: its figures and privacy loss count.
        stats = {"rows": counts.num_rows, "null_cells": null_cells, "cells": cells}
        state.add(window, aggregate.DATASET, stats)
        epoch = window // (settings.privacy.epoch_seconds * 1_000_000)
        out.stats[aggregate.DATASET] = {
            **stats_of(counts, null_cells=null_cells, cells=cells, rows=counts.num_rows),
            "windows": 1,
            "epochs": [epoch],
        }
    out.records = {"published": len(records - suppressed), "suppressed": len(suppressed)}
    tallies = state.windows.pop(window, {})
    out.figures = {d: figures(c) for d, c in sorted(tallies.items()) if d != HELD_RECORDS}
    return out


def figures(counts: dict[str, int]) -> dict:
    """A window's quality figures from its counts (as the dataset score is computed)."""
    score, components = dataset_quality(counts)
    return {"score": score, "components": components, "counts": dict(sorted(counts.items()))}


def _k_anonymous(
    held: dict[str, pa.Table], privacy: PrivacySettings
) -> tuple[dict[str, pa.Table], set[int]]:
    """Each dataset's held rows as published (windowed ones generalized), and the records
    k-anonymity withholds."""
    public, suppressed = {}, set()
    for dataset, rows in held.items():
        table = staged.published_part(rows, dataset)
        if staged.is_windowed(dataset):
            people = (
                rows.column(staged.SUBSCRIBER) if staged.SUBSCRIBER in rows.column_names else None
            )
            table, keep = k_anonymize(schema_for_dataset(dataset), table, privacy, people)
            withheld = record_keys(rows)[~np.asarray(keep, bool)]
            suppressed |= set(withheld.tolist())
        public[dataset] = table
    return public, suppressed


def conceal_lineage(rows: pa.Table, key: PseudonymKey) -> pa.Table:
    """Released rows with keyed pseudonyms for their Kafka offsets, in that order: an exact
    offset, or the rows' stream order, would date each one (``concealed_offsets``)."""
    at = rows.schema.get_field_index("source_offset")
    offsets = concealed_offsets(
        rows.column("source_partition"), rows.column(at), rows.column(EPOCH_FIELD), key
    )
    rows = rows.set_column(at, rows.schema.field(at), offsets)
    return rows.sort_by([("source_partition", "ascending"), ("source_offset", "ascending")])
