"""What ``rda status`` reports of the journal, from segment headers and the entries since.

The report — the last batches, the totals of every done batch, the last windows closed — is a
scan of every entry in meaning, and was one in fact: ~2 s after a day at a 1 s trigger, growing
with the stream's age. A segment's header carries its entries' totals and the windows they
closed last (``streaming/journal_segments.py``), so the report reads headers, the loose entries,
and the entries of only those segments that may hold one of the last batches. A segment
overlapping another (two workers compacted at once) or without those header members is read
entry by entry, each batch counted once.
"""

from __future__ import annotations

from typing import Any

from streaming import journal_segments
from streaming.journal import LISTINGS, PREFIX, BatchJournal
from streaming.journal_fold import (
    COUNTED,
    WINDOWS_KEPT,
    counts,
    newest_windows,
    window_records,
    with_suppressed,
)
from streaming.journal_objects import parsed_segment


def journal_report(journal: BatchJournal, limit: int) -> dict[str, Any]:
    """``batches`` (the last ``limit``, newest first, without their plans), ``totals`` (every
    done batch's records) and ``closed_windows`` (the last ``limit``, newest first)."""
    if limit > WINDOWS_KEPT:  # more windows than a header keeps: every entry
        entries = journal.entries()
        return _report(entries, counts(entries), window_records(entries), limit)
    for _ in range(LISTINGS):
        try:
            return _from_headers(journal, limit)
        except FileNotFoundError:
            continue  # compacted while listed: its segment is there now
    return _from_headers(journal, limit)


def _from_headers(journal: BatchJournal, limit: int) -> dict[str, Any]:
    listed = journal.store.list(PREFIX, ".json")
    segments = sorted(
        (p for p in listed if journal_segments.is_segment(p)), key=journal_segments.id_range
    )
    seen: set[int] = set()
    counted, windows, newest = dict.fromkeys(COUNTED, 0), [], {}
    for path in segments:
        data = journal.store.read_bytes(path)
        header = parsed_segment(journal_segments.header_of, path, data)
        ids = set(header["batch_ids"])
        if ids & seen or "totals" not in header or "windows" not in header:
            # the bytes read for its header
            entries = parsed_segment(journal_segments.entries_of, path, data)
            held = [e for e in entries if e["batch_id"] not in seen]
            header = {"totals": counts(held), "windows": window_records(held)}
        _add(counted, header["totals"])
        windows += header["windows"]
        seen |= ids
    loose = {}
    for path in listed:
        if not journal_segments.is_segment(path):
            for entry in journal.entries_at(path):
                loose[entry["batch_id"]] = entry
    fresh = [e for batch_id, e in sorted(loose.items()) if batch_id not in seen]
    _add(counted, counts(fresh))
    windows += window_records(fresh)
    newest.update(loose)
    for path in reversed(segments):  # read only a segment that may hold one of the last
        if len(newest) >= limit and journal_segments.id_range(path)[1] < sorted(newest)[-limit]:
            continue
        newest.update((e["batch_id"], e) for e in journal.entries_at(path))
    return _report([newest[i] for i in sorted(newest)], counted, windows, limit)


def _report(
    entries: list[dict[str, Any]], counted: dict[str, int], windows: list, limit: int
) -> dict[str, Any]:
    last = entries[::-1][:limit]
    return {
        "batches": [{k: v for k, v in e.items() if k not in ("plan", "windows")} for e in last],
        "totals": with_suppressed(counted),
        "closed_windows": newest_windows(windows, limit),
    }


def _add(counted: dict[str, int], more: dict[str, int]) -> None:
    for name in COUNTED:
        counted[name] += more.get(name, 0)
