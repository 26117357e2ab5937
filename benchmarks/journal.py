"""``rda bench --only journal``: what the journal's questions cost a batch after a day.

A stream at a 1 s trigger journals 86,400 batches a day, and every batch asks the journal seven
questions (its unfinished batches three times, the planned ends, the event-time states, its
own entry twice), each listing the topic's folder; ``rda status`` reports on all of it. The
baseline is the same day's journal with every entry loose, as before segments
(``streaming/journal_segments.py``); beside it the journal as ``rda run`` leaves it, its done
entries compacted as it goes. Both are built here from one real entry (written through
``BatchJournal``), copied with new ids and ranges.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.timing import best_pair_seconds
from streaming import journal_segments
from streaming.journal import BatchJournal
from streaming.journal_report import journal_report

TOPIC = "day"
PARTITIONS = 4
FIRST_ID = 1_000_000 << 12


def run(quick: bool = False) -> dict:
    entries = 8_640 if quick else 86_400  # a tenth of a day, or a day, at a 1 s trigger
    workdir = Path(tempfile.mkdtemp(prefix="rda-bench-journal-"))
    try:
        loose, segmented = workdir / "loose", workdir / "segmented"
        _journal(loose, entries, compact=False)
        _journal(segmented, entries, compact=True)
        newest = FIRST_ID + (entries - 1) * 4096
        loose_s, segmented_s = best_pair_seconds(
            lambda: _a_batch_asks(loose, newest), lambda: _a_batch_asks(segmented, newest), 5
        )
        start_loose, start_segmented = _process_start(loose), _process_start(segmented)
        status_loose, status_segmented = best_pair_seconds(
            lambda: journal_report(BatchJournal(loose, read_only=True), 10),
            lambda: journal_report(BatchJournal(segmented, read_only=True), 10),
            3,
        )
        objects = {name: len(list((workdir / name / "journal" / TOPIC).iterdir())) for name in
                   ("loose", "segmented")}  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratio = round(segmented_s / loose_s, 4)
    asks = {"loose": round(loose_s * 1e3, 1), "segmented": round(segmented_s * 1e3, 1)}
    start = {"loose": round(start_loose * 1e3), "segmented": round(start_segmented * 1e3)}
    status = {"loose": round(status_loose * 1e3), "segmented": round(status_segmented * 1e3)}
    return {
        "name": "journal",
        "entries": entries,
        "objects": objects,
        "a_batch_asks_ms": asks,
        "process_start_ms": start,
        "status_report_ms": status,
        "ratio_to_loose": ratio,
        "summary": (
            f"a batch's seven journal questions over {entries:,} entries: "
            f"{asks['segmented']} ms with segments ({objects['segmented']} objects) against "
            f"{asks['loose']} ms loose ({objects['loose']} objects): {ratio:.4f}x; a process "
            f"starting folds it in {start['segmented']} ms ({start['loose']} ms loose); `rda "
            f"status` reads it in {status['segmented']} ms ({status['loose']} ms loose)"
        ),
    }


def _journal(root: Path, entries: int, compact: bool) -> None:
    """``entries`` done batches of one topic, written as a stream writes them; ``compact``: a
    segment every ``SEGMENT_ENTRIES``, as ``rda run``'s worker makes them."""
    journal = BatchJournal(root)
    journal.record_plan(FIRST_ID, TOPIC, _plan(0))
    journal.set_state(FIRST_ID, "done", records_read=400, records_published=400)
    template = journal.batch(FIRST_ID)
    for i in range(1, entries):
        batch_id = FIRST_ID + i * 4096
        entry = {**template, "batch_id": batch_id, "plan": _plan(i)}
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        journal.store.write_bytes(f"journal/{TOPIC}/{batch_id:016d}.json", data)
        if compact and i % journal_segments.SEGMENT_ENTRIES == 0:
            journal.journal_ends(TOPIC)  # what the worker's batch asked, then its compaction
            journal.compact(TOPIC)


def _plan(i: int) -> dict:
    ranges = [{"partition": p, "start": i * 100, "end": i * 100 + 100} for p in range(PARTITIONS)]
    return {
        "ranges": ranges,
        "chunks": [{"topic": TOPIC, **r} for r in ranges],
        "state": {str(p): {"base": None, "position": i + 1} for p in range(PARTITIONS)},
    }


def _a_batch_asks(root: Path, batch_id: int) -> None:
    """The questions one batch asks, each of its own journal object as the driver opens them."""
    for _ in range(3):
        BatchJournal(root).unfinished_batches(TOPIC)
    BatchJournal(root).journal_ends(TOPIC)
    BatchJournal(root).state_view(TOPIC)
    for _ in range(2):
        BatchJournal(root).batch(batch_id)


def _process_start(root: Path) -> float:
    """Seconds a new process takes to fold the journal in (its first question)."""
    code = (
        "import sys, time; from streaming.journal import BatchJournal; "
        "t = time.perf_counter(); BatchJournal(sys.argv[1]).journal_ends(sys.argv[2]); "
        "print(time.perf_counter() - t)"
    )
    root_dir = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), TOPIC],
        cwd=root_dir, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return float(done.stdout.strip())
