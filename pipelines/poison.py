"""Poison records: what still kills a worker after bounded parsing, and the hook that tests it.

Bounded parsing (``schemas/adapters/bounds.py``) and the adapters' guard turn every input anyone
foresaw into a quarantine reason. What still kills a process — a segfault in a C extension, the
kernel's OOM killer — is caught one level up: the driver lands each batch in a child process,
and when the same journaled range kills it N times, bisects the range and quarantines the
offending records as ``crashed_worker`` (``streaming/poison.py``). Those records then reach the
pipeline as ``refused``: quarantined unread, their raw bytes kept privately, never parsed again.

Test hook: ``RDA_CRASH_ON_RECORD=MARKER`` makes the process that is about to decode a record
whose value contains the bytes MARKER SIGKILL itself — the stand-in, in tests, for a parser that
crashes on one record. Nothing else should set it.
"""

from __future__ import annotations

import os
import signal

import pyarrow as pa
import pyarrow.compute as pc

CRASHED_WORKER = "crashed_worker"
CRASH_ENV = "RDA_CRASH_ON_RECORD"


def crashed_worker_reason(crashes: int, how: str) -> tuple[str, str]:
    """The quarantine (code, reason) of a record found to kill the worker."""
    return CRASHED_WORKER, (
        f"decoding this record killed the worker process {_times(crashes)} ({how}); "
        "it was isolated by bisecting its batch and is kept unread"
    )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def crash_on_marker(values: pa.Array, formats: pa.Array, skipped: str) -> None:
    """The test hook: die like a crashing parser if a record about to be decoded has the marker
    (``formats``: each record's, null where none reads it)."""
    marker = os.environ.get(CRASH_ENV)
    if not marker or not len(values):
        return
    found = pc.fill_null(pc.match_substring(values, marker), False).to_pylist()
    kinds = formats.to_pylist()
    if any(hit and fmt not in (skipped, None) for hit, fmt in zip(found, kinds, strict=True)):
        os.kill(os.getpid(), signal.SIGKILL)
