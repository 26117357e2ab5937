"""Quality counts of the event-time core: per dataset for the manifests, per window for the
window figures (``validators/score.py`` turns them into scores)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.fields import DEVICE_FIELD_NAMES
from schemas.published import EPOCH_FIELD, FLAGS_FIELD
from validators.quality import FLAGS

# Quality flags and device proofs are about the row, not measurements it could lack.
NOT_MEASURED = frozenset({FLAGS_FIELD, *DEVICE_FIELD_NAMES})


def sum_stats(stats: list[dict]) -> dict:
    """Several quality-count dicts (``_stats``) as one."""
    total: dict = {"quarantined": Counter(), "flags": Counter(), "epochs": set()}
    for s in stats:
        for key, value in s.items():
            if key in ("quarantined", "flags"):
                total[key].update(value)
            elif key == "epochs":
                total["epochs"].update(value)
            else:
                total[key] = total.get(key, 0) + value
    total["quarantined"] = dict(sorted(total["quarantined"].items()))
    total["flags"] = {k: v for k, v in sorted(total["flags"].items()) if v}
    total["epochs"] = sorted(total["epochs"])
    return total


# -- advancing -------------------------------------------------------------------------------


def row_nulls(rows: pa.Table) -> np.ndarray:
    """Per row, its empty cells (quality flags and device proofs aside)."""
    total = np.zeros(rows.num_rows, np.int64)
    for name in measured(rows.column_names):
        total += np.asarray(pc.is_null(rows.column(name)), np.int64)
    return total


def cell_counts(rows: pa.Table) -> tuple[int, int]:
    """Empty cells and cells, for completeness (a row without quality flags is not empty)."""
    columns = [rows.column(n) for n in measured(rows.column_names)]
    return sum(c.null_count for c in columns), rows.num_rows * len(columns)


def measured(names: list[str]) -> list[str]:
    """The columns completeness counts: measurements a row could lack."""
    return [n for n in names if n not in NOT_MEASURED]


def flag_counts(flags: pa.Array) -> dict[str, int]:
    if flags.null_count == len(flags):  # most rows raise no flag: no search to run
        return dict.fromkeys(FLAGS, 0)
    return {
        flag: int(pc.sum(pc.fill_null(pc.match_substring(flags, flag), False)).as_py() or 0)
        for flag in FLAGS
    }


def stats_of(published: pa.Table, **counts) -> dict:
    """A dataset's quality counts for the manifest (``validators/score.dataset_counts``)."""
    epochs = []
    if EPOCH_FIELD in published.column_names and published.num_rows:
        epochs = sorted(pc.unique(published.column(EPOCH_FIELD)).to_pylist())
    return {
        "rows": counts.get("rows", 0),
        "quarantined": dict(sorted(counts.get("quarantined", {}).items())),
        "flags": {k: v for k, v in sorted(counts.get("flags", {}).items()) if v},
        "published": published.num_rows,
        "null_cells": counts.get("null_cells", 0),
        "cells": counts.get("cells", 0),
        "epochs": epochs,
    }
