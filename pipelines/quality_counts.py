"""Quality counts of the event-time core: per dataset for the manifests, per window for the
window figures (``validators/score.py`` turns them into scores)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.published import EPOCH_FIELD, FLAGS_FIELD
from validators.quality import FLAGS


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
    """Per row, its empty cells (the quality flags column aside)."""
    total = np.zeros(rows.num_rows, np.int64)
    for name in rows.column_names:
        if name != FLAGS_FIELD:
            total += np.asarray(pc.is_null(rows.column(name)), np.int64)
    return total


def cell_counts(rows: pa.Table) -> tuple[int, int]:
    """Empty cells and cells, for completeness (a row without quality flags is not empty)."""
    columns = [rows.column(n) for n in rows.column_names if n != FLAGS_FIELD]
    return sum(c.null_count for c in columns), rows.num_rows * len(columns)


def flag_counts(flags: pa.Array) -> dict[str, int]:
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
        "suppressed": counts.get("suppressed", 0),
        "published": published.num_rows,
        "null_cells": counts.get("null_cells", 0),
        "cells": counts.get("cells", 0),
        "epochs": epochs,
    }
