"""What a topic's ``done`` journal entries tell the per-batch questions, each folded in once.

A ``done`` entry never changes, so a process reads it once (loose, or in a segment:
``streaming/journal_segments.py``) and keeps only what the questions a batch asks need: per
partition the furthest planned offset and the newest event-time state. ``StateView`` answers
the event-time questions from a fold and the entries not done yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DoneFold:
    """A topic's ``done`` entries folded: per partition the furthest planned offset and the
    newest event-time state, and the objects they came from."""

    ends: dict[int, int] = field(default_factory=dict)  # partition -> its furthest range's end
    heads: dict[int, tuple[int, int]] = field(default_factory=dict)  # -> (position, batch id)
    loose: set[str] = field(default_factory=set)  # loose done objects folded in
    segments: set[str] = field(default_factory=set)  # segments folded in
    # Loose objects whose entries came in a segment, while they are still listed (a
    # compaction writes its segment first, then deletes them).
    compacted: set[str] = field(default_factory=set)

    def add(self, entry: dict[str, Any]) -> None:
        """Fold in a done entry; folding one in again changes nothing."""
        for r in entry["plan"].get("ranges", []):
            self.note_end(r["partition"], r["end"])
        state = entry["plan"].get("state")
        for key, info in state.items() if isinstance(state, dict) else ():
            self.note_head(int(key), info["position"], entry["batch_id"])

    def merge(self, summary: dict[str, Any]) -> None:
        """Fold in another fold's ``summary`` (a segment's: ``summary_of``)."""
        for partition, end in summary["ends"].items():
            self.note_end(int(partition), end)
        for partition, (position, batch_id) in summary["heads"].items():
            self.note_head(int(partition), position, batch_id)

    def note_end(self, partition: int, end: int) -> None:
        self.ends[partition] = max(self.ends.get(partition, 0), end)

    def note_head(self, partition: int, position: int, batch_id: int) -> None:
        """The newest position; of equal ones the first batch, as a scan in id order finds."""
        newest = self.heads.get(partition)
        if position > 0 and (newest is None or (position, -batch_id) > (newest[0], -newest[1])):
            self.heads[partition] = (position, batch_id)


def summary_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What a fold of ``entries`` holds, as JSON: per partition the furthest end and the
    newest state (position, batch id)."""
    fold = DoneFold()
    for entry in entries:
        fold.add(entry)
    return {
        "ends": {str(p): end for p, end in sorted(fold.ends.items())},
        "heads": {str(p): list(head) for p, head in sorted(fold.heads.items())},
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
