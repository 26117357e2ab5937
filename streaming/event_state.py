"""Around the event-time step: where a batch's state starts, the end-of-input flush, clean-up,
what is held (for ``rda status``) and a batch's counts once the step has decided.

The step itself is ``streaming/event_time.py``; the state lives in ``sinks/state_store.py``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import duckdb

from pipelines import windows
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.state_store import StateStore
from streaming.batch import BatchSummary
from streaming.errors import SettingsError
from streaming.event_time import Outcome, iso
from streaming.journal import BatchJournal
from validators.event_time import WindowSettings
from validators.score import components_from_counts, score


def event_time_config(settings: Any) -> dict[str, Any]:
    """``RunConfig`` fields from ``rda run``'s settings (``streaming/config.py``)."""
    try:
        windows = WindowSettings(settings.window, settings.allowed_lateness)
    except ValueError as error:
        raise SettingsError(f"window / allowed lateness: {error}") from None
    return {"windows": windows, "flush_windows": settings.flush_windows}


def state_plan(journal: BatchJournal, topic: str, plan: dict, partitions: list[int]) -> dict:
    """Where the batch's state starts: journaled already (a redo), else after the latest one."""
    if "state" in plan:
        return plan["state"]
    head = journal.state_head(topic)
    position = 0
    if head is not None:
        position = journal.batch(head)["plan"]["state"]["position"]
    return {"base": head, "position": position + 1, "partitions": sorted(partitions)}


def account(summary: BatchSummary, outcome: Outcome) -> None:
    """The batch's counts once the step has decided: read = published + quarantined +
    suppressed + held, where held is the change in records on hold."""
    if summary.published != outcome.records["staged"]:
        raise AssertionError(
            f"batch {summary.batch_id}: the stage passed {summary.published} records, the "
            f"event-time step decided {outcome.records['staged']}"
        )
    summary.published = outcome.records["published"]
    summary.quarantined += outcome.records["quarantined"]
    summary.suppressed += outcome.records["suppressed"]
    summary.held = outcome.records["held"]
    summary.reasons = dict(sorted((Counter(summary.reasons) + outcome.reasons).items()))
    summary.flags = {k: v for k, v in sorted(outcome.flags.items()) if v}
    summary.held_total, summary.held_until = outcome.held_total, outcome.held_until
    summary.windows_closed = outcome.closed
    total = summary.published + summary.quarantined + summary.suppressed + summary.held
    if summary.read != total:
        raise AssertionError(f"batch {summary.batch_id} does not reconcile: {summary.as_dict()}")
    null_cells, cells = outcome.cells
    issues = {**summary.reasons, **summary.flags}
    summary.quality_score = score(components_from_counts(summary.read, issues, null_cells, cells))


def collect(layout: DataLayout, journal: BatchJournal, topic: str, keep_also: int | None) -> None:
    """Remove the state no batch can need: keep the latest, and those redos start from."""
    keep = journal.state_bases(topic) | {journal.state_head(topic), keep_also}
    StateStore(layout, topic).collect({b for b in keep if b is not None})


def flush_plan(
    plan: dict | None,
    topic: str,
    journal: BatchJournal,
    layout: DataLayout,
    positions: tuple[dict[int, int], dict[int, int]],
) -> dict | None:
    """End of input: a plan that reads every partition to its end closes every window
    (``plan["flush"]``); with nothing left to read but records held, a plan of no ranges does."""
    committed, ends = positions
    reached = dict(journal.journal_ends(topic))
    for r in (plan or {}).get("ranges", []):
        reached[r["partition"]] = max(reached.get(r["partition"], 0), r["end"])
    caught_up = all(max(committed.get(p, 0), reached.get(p, 0)) >= end for p, end in ends.items())
    if not caught_up:
        return plan
    if plan is None:
        if not has_open_windows(layout, journal, topic):
            return None
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        plan = {"batch_id": journal.next_batch_id(), "planned_at": now, "ranges": [], "chunks": []}
    return {**plan, "flush": True}


def has_open_windows(layout: DataLayout, journal: BatchJournal, topic: str) -> bool:
    """Whether the topic holds records, or open windows, that a flush would close."""
    head = journal.state_head(topic)
    if head is None or not StateStore(layout, topic).has_snapshot(head):
        return False
    doc, _ = StateStore(layout, topic).read_snapshot(head)
    return bool(doc.get("windows"))


def held_report(layout: DataLayout, journal: BatchJournal, topics: list[str]) -> dict[str, Any]:
    """Per topic: records on hold, by window and until when; watermarks; the closed point."""
    report = {}
    for topic in topics:
        head = journal.state_head(topic)
        store = StateStore(layout, topic)
        if head is None or not store.has_snapshot(head):
            continue
        doc, _ = store.read_snapshot(head)
        settings = doc["settings"]
        window_us = settings["window_s"] * 1_000_000
        lateness_us = settings["allowed_lateness_s"] * 1_000_000
        open_windows = [
            {
                "window_start": iso(int(w)),
                "records": tally.get(windows.HELD_RECORDS, 0),
                "closes_at_watermark": iso(int(w) + window_us + lateness_us),
            }
            for w, tally in sorted(doc["windows"].items(), key=lambda kv: int(kv[0]))
        ]
        held = [w for w in open_windows if w["records"]]
        report[topic] = {
            "held_records": sum(w["records"] for w in held),
            "held_until": held[-1]["closes_at_watermark"] if held else None,
            "windows": open_windows,
            "watermarks": {p: iso(v) for p, v in sorted(doc["watermarks"].items())},
            "closed_through": iso(doc["closed_through"]),
            "window_s": settings["window_s"],
            "allowed_lateness_s": settings["allowed_lateness_s"],
        }
    return report


def windows_history(catalog: Catalog, limit: int) -> list[dict[str, Any]]:
    """The last closed windows' quality scores (none in a catalog older than windows)."""
    try:
        return catalog.windows.latest(limit)
    except duckdb.CatalogException:
        return []
