"""What a run says of its batches: a line (and its structured fields) for each one, and the
report ``rda run --json`` prints at the end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from streaming.batch import BatchSummary

KEEP_BATCHES = 100  # summaries kept for the final report; older ones are counted only


@dataclass
class RunReport:
    batches: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("batches", "read", "published", "quarantined", "suppressed", "held"), 0
        )
    )
    stopped_by: str | None = None  # a signal's name, or None when --once ran out of records

    def add(self, summary: BatchSummary) -> None:
        self.batches = [*self.batches, summary.as_dict()][-KEEP_BATCHES:]
        self.totals["batches"] += 1
        self.totals["read"] += summary.read
        self.totals["published"] += summary.published
        self.totals["quarantined"] += summary.quarantined
        self.totals["suppressed"] += summary.suppressed
        self.totals["held"] += summary.held


def log_batch(log: logging.Logger, topic: str, summary: BatchSummary, seconds: float) -> None:
    """The batch's line: its counts and steps' seconds, and the same as fields (``event``
    ``batch``) for a JSON log."""
    log.info(
        "batch %d on %s: read %d, published %d, quarantined %d, suppressed %d, held %+d "
        "(%d on hold) in %.1f s%s%s",
        summary.batch_id,
        topic,
        summary.read,
        summary.published,
        summary.quarantined,
        summary.suppressed,
        summary.held,
        summary.held_total,
        seconds,
        " (resumed)" if summary.resumed else "",
        " (" + ", ".join(f"{k} {v:.2f}" for k, v in summary.steps.items()) + ")"
        if summary.steps
        else "",
        extra={
            "event": "batch",
            "batch_id": summary.batch_id,
            "topic": topic,
            "read": summary.read,
            "published": summary.published,
            "quarantined": summary.quarantined,
            "suppressed": summary.suppressed,
            "held": summary.held,
            "held_total": summary.held_total,
            "held_until": summary.held_until,
            "quality_score": summary.quality_score,
            "seconds": round(seconds, 3),
            "resumed": summary.resumed,
            "steps_seconds": {k: round(v, 3) for k, v in summary.steps.items()},
            "checkpoints": [(c["dataset"], c["tree_size"]) for c in summary.checkpoints],
        },
    )
