"""The quality score (0–100): the mean of five documented components, each a share in [0, 1].

| component | share of rows that… |
|---|---|
| completeness | …have a value: 1 − null cells / cells of the published rows |
| validity | …pass the schema's row checks and format checks (``malformed``, ``out_of_range``…) |
| timeliness | …arrive on time: neither ``clock_skew`` (quarantined) nor ``late`` (flagged) |
| uniqueness | …are not duplicates of an earlier record's natural key |
| consistency | …agree with their neighbours: no ``implausible``, ``teleport``, ``flat_line``, |
| | ``counter_reset`` |

A batch's score counts its records (every quarantine reason is attributed to a component); a
dataset's score counts its rows cumulatively over all checkpoints (rows a record never yielded,
because it could not be decoded, belong to no dataset and so only to the batch score).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

COMPONENTS = ("completeness", "validity", "timeliness", "uniqueness", "consistency")
TIMELINESS = ("clock_skew", "late", "window_closed")
UNIQUENESS = ("duplicate",)
CONSISTENCY = ("implausible", "teleport", "flat_line", "counter_reset")
NOT_QUALITY = ("k_anonymity",)  # withheld for privacy: says nothing about the data


def components_from_counts(
    total: int, issues: dict[str, int], null_cells: int, cells: int
) -> dict[str, float]:
    """Each component from a row (or record) count and its issue counts by code."""
    if total <= 0:
        return dict.fromkeys(COMPONENTS, 1.0)

    def share(codes: tuple[str, ...]) -> float:
        return max(0.0, 1 - sum(issues.get(c, 0) for c in codes) / total)

    known = set(TIMELINESS) | set(UNIQUENESS) | set(CONSISTENCY) | set(NOT_QUALITY)
    invalid = sum(n for code, n in issues.items() if code not in known)
    return {
        "completeness": 1 - null_cells / cells if cells else 1.0,
        "validity": max(0.0, 1 - invalid / total),
        "timeliness": share(TIMELINESS),
        "uniqueness": share(UNIQUENESS),
        "consistency": share(CONSISTENCY),
    }


def score(components: dict[str, float]) -> float:
    return round(100 * sum(components[c] for c in COMPONENTS) / len(COMPONENTS), 2)


WITHHELD = "suppressed"  # the counts' name for them before they were kept private


def dataset_counts(stats: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict:
    """Cumulative counts of a dataset: the previous checkpoint's plus this batch's chunks.

    Not a count of the records k-anonymity withheld, which a checkpoint of an earlier version
    carries (``suppressed``): carried on, it would go on being published."""
    counts = Counter({k: n for k, n in (previous or {}).items() if k != WITHHELD})
    for chunk in stats:
        counts["rows"] += chunk["rows"]
        counts["null_cells"] += chunk["null_cells"]
        counts["cells"] += chunk["cells"]
        for code, n in {**chunk["quarantined"], **chunk["flags"]}.items():
            counts[code] += n
    return dict(sorted(counts.items()))


def dataset_quality(counts: dict[str, int]) -> tuple[float, dict[str, float]]:
    skip = {"rows", "null_cells", "cells"}
    issues = {k: v for k, v in counts.items() if k not in skip}
    parts = components_from_counts(
        counts.get("rows", 0), issues, counts.get("null_cells", 0), counts.get("cells", 0)
    )
    return score(parts), {k: round(v, 6) for k, v in parts.items()}
