"""Reading one of the journal's objects: a loose entry, or a segment of compacted ones.

Either is read whole or the question it answers stops: an object the journal cannot read holds
batches whose ranges and states are unknown, and answering without them could plan those ranges
again. A loose entry is rewritten whole at each state change by its batch's owner; on a store
whose PUT is not atomic (some S3-compatible servers; local folders and S3 itself are atomic), a
reader can get part of it mid-rewrite, so bytes that are not JSON are read again before the
entry is called damaged. A segment is written once, never rewritten: one that does not parse is
damaged at once. A JSON object that is not an entry (no batch id) is someone else's file: left
alone (``NotAnEntry``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sinks.storage import Store
from streaming import journal_segments
from streaming.errors import JournalDamaged

T = TypeVar("T")
TORN_READS = 5  # reads of a loose entry that is not JSON before it is called damaged
TORN_WAIT_S = 0.05  # between them: a rewrite of an entry (a few kB) ends well within


class NotAnEntry(ValueError):
    """A JSON object in the journal's folder that is not a batch's entry: left alone."""


def read_entry(store: Store, path: str) -> dict[str, Any]:
    """A loose entry; ``NotAnEntry`` for a JSON object of something else, ``JournalDamaged``
    for bytes that are not JSON even when read again (``TORN_READS``)."""
    for attempt in range(1, TORN_READS + 1):
        data = store.read_bytes(path)
        try:
            entry = json.loads(data)
            break
        except ValueError as error:  # not JSON (not even UTF-8): torn, or damaged
            if attempt == TORN_READS:
                raise JournalDamaged(
                    f"the journal entry {path} cannot be read ({len(data)} bytes, {TORN_READS} "
                    f"reads): {error}; the batch it records is unknown, so the run stops rather "
                    "than plan its ranges again: restore the object from a backup of the data "
                    "directory"
                ) from None
            time.sleep(TORN_WAIT_S)
    if not isinstance(entry, dict) or "batch_id" not in entry:
        raise NotAnEntry(f"{path} is not a journal entry")
    return entry


def segment_entries(store: Store, path: str) -> list[dict[str, Any]]:
    """The entries a segment holds; ``JournalDamaged`` when its bytes are not a segment's."""
    return parsed_segment(journal_segments.entries_of, path, store.read_bytes(path))


def segment_header(store: Store, path: str) -> dict[str, Any]:
    """A segment's header (what the per-batch questions need of its entries); ``JournalDamaged``
    when it is not a segment's."""
    return parsed_segment(journal_segments.header_of, path, store.read_bytes(path))


def parsed_segment(parse: Callable[[str, bytes], T], path: str, data: bytes) -> T:
    """``parse(path, data)`` (``journal_segments``' header or entries); a segment it refuses is
    damaged (``JournalDamaged``). For a reader that parses the bytes it read more than once."""
    try:
        return parse(path, data)
    except ValueError as error:
        raise JournalDamaged(f"the journal segment {path} cannot be read: {error}") from None
