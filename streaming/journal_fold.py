"""What a topic's ``done`` journal entries tell the per-batch questions, each folded in once.

A ``done`` entry never changes, so a process reads it once (loose, or in a segment:
``streaming/journal_segments.py``) and keeps only what the questions a batch asks need: per
partition the furthest planned offset and the newest event-time state. ``StateView`` answers
the event-time questions from a fold and the entries not done yet. ``counts`` and the windows
functions are what ``rda status`` reports of done entries (``streaming/journal_report.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

UNREAD_FROM = "unread_from"  # a plan's partitions no plan had read yet, and where they start


def planned_ends(plan: dict[str, Any]) -> Iterator[tuple[int, int]]:
    """(partition, offset) the plan takes the stream to: each range's end, and where each
    partition it reads nothing of and no plan had read starts (its log start then). A partition
    first seen empty is known from then on: records retention deletes from it before the
    stream reads them are then found lost, not skipped as if they had never been there."""
    for r in plan.get("ranges", []):
        yield r["partition"], r["end"]
    for position in plan.get(UNREAD_FROM, []):
        yield position["partition"], position["offset"]


@dataclass
class DoneFold:
    """A topic's ``done`` entries folded: per partition the furthest planned offset and the
    newest event-time state, and the objects they came from."""

    ends: dict[int, int] = field(default_factory=dict)  # partition -> its furthest range's end
    topic_ids: set[str] = field(default_factory=set)  # the ids of the topic its batches read
    heads: dict[int, tuple[int, int]] = field(default_factory=dict)  # -> (position, batch id)
    loose: set[str] = field(default_factory=set)  # loose done objects folded in
    segments: set[str] = field(default_factory=set)  # segments folded in
    # Loose objects whose entries came in a segment, while they are still listed (a
    # compaction writes its segment first, then deletes them).
    compacted: set[str] = field(default_factory=set)

    def add(self, entry: dict[str, Any]) -> None:
        """Fold in a done entry; folding one in again changes nothing."""
        for partition, end in planned_ends(entry["plan"]):
            self.note_end(partition, end)
        if isinstance(topic_id := entry["plan"].get("topic_id"), str):
            self.topic_ids.add(topic_id)
        state = entry["plan"].get("state")
        for key, info in state.items() if isinstance(state, dict) else ():
            self.note_head(int(key), info["position"], entry["batch_id"])

    def merge(self, summary: dict[str, Any]) -> None:
        """Fold in another fold's ``summary`` (a segment's: ``summary_of``)."""
        for partition, end in summary["ends"].items():
            self.note_end(int(partition), end)
        for partition, (position, batch_id) in summary["heads"].items():
            self.note_head(int(partition), position, batch_id)
        self.topic_ids.update(summary.get("topic_ids", ()))  # segments written before ids: none

    def note_end(self, partition: int, end: int) -> None:
        self.ends[partition] = max(self.ends.get(partition, 0), end)

    def note_head(self, partition: int, position: int, batch_id: int) -> None:
        """The newest position; of equal ones the first batch, as a scan in id order finds."""
        newest = self.heads.get(partition)
        if position > 0 and (newest is None or (position, -batch_id) > (newest[0], -newest[1])):
            self.heads[partition] = (position, batch_id)


def summary_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What a fold of ``entries`` holds, as JSON: per partition the furthest end and the
    newest state (position, batch id), and the topic ids read."""
    fold = DoneFold()
    for entry in entries:
        fold.add(entry)
    return {
        "ends": {str(p): end for p, end in sorted(fold.ends.items())},
        "heads": {str(p): list(head) for p, head in sorted(fold.heads.items())},
        "topic_ids": sorted(fold.topic_ids),
    }


@dataclass(frozen=True)
class StateView:
    """A topic's event-time states per partition, from one reading of the journal."""

    done: DoneFold | None
    unfinished: list[dict[str, Any]]  # oldest first

    def latest(self, partition: int) -> tuple[int | None, int]:
        """The batch whose state of the partition came last and that state's position (None
        and 0 when it has none): of equal positions the first batch."""
        newest, head = self.done.heads.get(partition, (0, None)) if self.done else (0, None)
        for entry in self.unfinished:
            info = state_of(entry, partition)
            if entry["state"] == "planned" or info is None or info["position"] <= 0:
                continue
            if (info["position"], -entry["batch_id"]) > (newest, -(head or 0)):
                head, newest = entry["batch_id"], info["position"]
        return head, newest

    def bases(self, partition: int) -> set[int]:
        """The states unfinished batches (landed or later) of the partition started from: a
        redo needs them."""
        bases = set()
        for entry in self.unfinished:
            info = state_of(entry, partition)
            if entry["state"] != "planned" and info and info["base"] is not None:
                bases.add(info["base"])
        return bases


def state_of(entry: dict[str, Any], partition: int) -> dict[str, Any] | None:
    """The batch's event-time state info of ``partition`` (base, position), if it has one."""
    state = entry["plan"].get("state")
    return state.get(str(partition)) if isinstance(state, dict) else None


COUNTED = ("read", "published", "quarantined", "held")  # each a journal entry's records_<name>
WINDOWS_KEPT = 32  # a segment's header keeps the windows of its newest this many window keys


def counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Records read, published, quarantined and held by the ``done`` entries, summed."""
    done = [e for e in entries if e["state"] == "done"]
    return {name: sum(e.get(f"records_{name}") or 0 for e in done) for name in COUNTED}


def with_suppressed(counted: dict[str, int]) -> dict[str, int]:
    """The totals of ``counts``, with the records suppressed. A batch's ``records_held`` is the
    change it made to the records on hold (negative when it released more than it held), so
    the totals reconcile: read = published + quarantined + suppressed + held."""
    read, published, quarantined, held = (counted[name] for name in COUNTED)
    return {
        "read": read,
        "published": published,
        "quarantined": quarantined,
        "suppressed": read - published - quarantined - held,
        "held": held,
    }


def window_records(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The event-time windows the entries closed, one record per dataset, each with the id of
    the batch that recorded it."""
    return [{**w, "batch_id": e["batch_id"]} for e in entries for w in e.get("windows") or []]


def newest_windows(records: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` windows closed, newest first: per topic, partition and window, every
    dataset's quality score (as the batches that closed them recorded)."""
    found: dict[tuple, dict[str, Any]] = {}
    for w in sorted(records, key=lambda w: w["batch_id"]):  # a later batch's record wins
        one = found.setdefault(_window_key(w), {k: w.get(k) for k in ("topic", "partition")})
        one.update(window_start=w["window_start"], window_end=w["window_end"])
        one.setdefault("scores", {})[w["dataset"]] = w["score"]
    newest = sorted(found.values(), key=_window_order, reverse=True)
    return newest[:limit]


def kept_windows(records: list[dict[str, Any]], kept: int = WINDOWS_KEPT) -> list[dict[str, Any]]:
    """The records of the newest ``kept`` windows (and of those tied with the last of them):
    every window ``newest_windows`` could report, for any ``limit`` up to ``kept``, from these
    records and any others."""
    order = sorted({(w["window_start"], w["topic"]) for w in records}, reverse=True)
    if len(order) <= kept:
        return list(records)
    boundary = order[kept - 1]
    return [w for w in records if (w["window_start"], w["topic"]) >= boundary]


def _window_key(w: dict[str, Any]) -> tuple:
    return (w["topic"], w.get("partition"), w["window_start"])


def _window_order(w: dict[str, Any]) -> tuple:
    """Newest start first; then by topic and partition, whatever order the records came in."""
    partition = w.get("partition")
    return (w["window_start"], w["topic"], -1 if partition is None else partition)
