"""Journal segments: a topic's ``done`` entries, many to an object, so its folder stays small.

A stream journals one object a batch (``streaming/journal.py``), and every batch lists its
topic's folder a few times to learn what other workers planned: at a 1 s trigger that folder
holds 86,400 objects after a day, and each listing costs ~1 µs an object. A ``done`` entry never
changes, so once a topic has ``SEGMENT_ENTRIES`` of them loose, the worker that finished the
last batch writes them into one segment and then deletes the loose objects:

    journal/<topic>/<first batch id>-<last batch id>-<sha256 of the bytes, 16 hex>.segment.json

a header line first — the batch ids it holds, what a fold of its entries holds (per partition
the furthest planned offset and the newest event-time state, ``streaming/journal_fold.py``), so
a process starting on a long journal folds a segment in from its header alone, and what ``rda
status`` reports of them (their records counted, the windows they closed last) —, then one entry
a line (JSON Lines, each as its loose object held it), oldest first. The name's hash
makes two workers compacting at once write two segments rather than one over the other; an
entry found twice (in two segments, or loose again beside its segment) is one entry, identical
in both. The segment is durable before any loose object goes, so an entry is always in one or
the other; a reader whose listing shows neither lists again (``streaming/journal.py``). One case
is left: a process's very first listing of a topic, taken while a compaction deletes, could miss
both an entry's loose object and its new segment (a directory listing is not atomic); it has
nothing folded yet to see the contradiction with, and sees the segment at its next listing.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from streaming.journal_fold import counts, kept_windows, summary_of, window_records

SUFFIX = ".segment.json"
SEGMENT_ENTRIES = 1024  # loose done entries of a topic that make a segment
_NAME = re.compile(r"(\d{16,})-(\d{16,})-[0-9a-f]{16}")


def is_segment(path: str) -> bool:
    return path.endswith(SUFFIX) and _NAME.fullmatch(_stem(path)) is not None


def id_range(path: str) -> tuple[int, int]:
    """The first and last batch id a segment holds, from its name."""
    match = _NAME.fullmatch(_stem(path))
    if match is None:
        raise ValueError(f"{path} is not a journal segment")
    return int(match[1]), int(match[2])


def segment(prefix: str, entries: list[dict[str, Any]]) -> tuple[str, bytes]:
    """The object path (under the topic's folder ``prefix``) and bytes of a segment of
    ``entries`` (``done`` ones, of one topic)."""
    ordered = sorted(entries, key=lambda e: e["batch_id"])
    if not ordered or any(e["state"] != "done" for e in ordered):
        raise ValueError("a journal segment holds done entries, at least one")
    header = {
        "journal_segment": 1,
        "batch_ids": [e["batch_id"] for e in ordered],
        **summary_of(ordered),
        "totals": counts(ordered),  # what `rda status` reports of them (journal_report.py)
        "windows": kept_windows(window_records(ordered)),
    }
    lines = [header, *ordered]
    data = b"".join(json.dumps(line, sort_keys=True).encode() + b"\n" for line in lines)
    digest = hashlib.sha256(data).hexdigest()[:16]
    first, last = ordered[0]["batch_id"], ordered[-1]["batch_id"]
    return f"{prefix}/{first:016d}-{last:016d}-{digest}{SUFFIX}", data


def header_of(path: str, data: bytes) -> dict[str, Any]:
    """A segment's header: ``batch_ids``, ``ends``, ``heads`` and ``topic_ids`` (its entries'
    fold); ``ValueError`` when its first line is not a segment's header of ids in the name's
    range."""
    first, last = id_range(path)
    header = json.loads(data.split(b"\n", 1)[0])
    if not isinstance(header, dict) or header.get("journal_segment") != 1:
        raise ValueError(f"{path}: no journal segment header")
    ids = header.get("batch_ids")
    if not isinstance(ids, list) or not all(_in(i, first, last) for i in ids):
        raise ValueError(f"{path}: batch ids outside the segment's range")
    if not isinstance(header.get("ends"), dict) or not isinstance(header.get("heads"), dict):
        raise ValueError(f"{path}: a header without its fold")
    topic_ids = header.get("topic_ids", [])  # absent from segments written before topic ids
    if not isinstance(topic_ids, list) or not all(isinstance(i, str) for i in topic_ids):
        raise ValueError(f"{path}: topic ids that are not a list of strings")
    return header


def entries_of(path: str, data: bytes) -> list[dict[str, Any]]:
    """A segment's entries; ``ValueError`` when its bytes are not a segment's (no header, a
    line that is no done entry, an id outside the name's range)."""
    first, last = id_range(path)
    header_of(path, data)
    found = []
    for line in data.splitlines()[1:]:
        entry = json.loads(line)
        if not isinstance(entry, dict) or entry.get("state") != "done":
            raise ValueError(f"{path}: a line that is not a done journal entry")
        if not _in(entry.get("batch_id"), first, last):
            raise ValueError(f"{path}: a batch id outside the segment's range")
        found.append(entry)
    return found


def _in(batch_id: Any, first: int, last: int) -> bool:
    return isinstance(batch_id, int) and first <= batch_id <= last


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(SUFFIX)
