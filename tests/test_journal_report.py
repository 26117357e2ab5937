"""`rda status`'s journal figures, from segment headers: those of a scan of every entry."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streaming import journal_segments
from streaming.journal import STATES, BatchJournal
from streaming.journal_report import journal_report

window = st.tuples(
    st.sampled_from(["t", "u"]),  # topic
    st.integers(0, 2),  # partition
    st.integers(0, 40),  # window start (minutes)
    st.sampled_from(["radio_kpi.v1", "speed_test.v2"]),
    st.integers(0, 100),  # score
)
batch = st.tuples(
    st.sampled_from(STATES), st.integers(0, 500), st.integers(0, 50), st.lists(window, max_size=3)
)


def scan(entries: list[dict], limit: int) -> dict:
    """The report as a scan of every entry computes it (the specification)."""
    done = [e for e in entries if e["state"] == "done"]
    read, published = (sum(e[f"records_{k}"] or 0 for e in done) for k in ("read", "published"))
    held = sum(e["records_held"] or 0 for e in done)
    found: dict[tuple, dict] = {}
    for entry in entries:
        for w in entry.get("windows") or []:
            key = (w["topic"], w["partition"], w["window_start"])
            one = found.setdefault(key, {"topic": w["topic"], "partition": w["partition"]})
            one.update(window_start=w["window_start"], window_end=w["window_end"])
            one.setdefault("scores", {})[w["dataset"]] = w["score"]
    order = sorted(found.values(), key=lambda w: (w["window_start"], w["topic"], w["partition"]))
    return {
        "batches": [
            {k: v for k, v in e.items() if k not in ("plan", "windows")}
            for e in sorted(entries, key=lambda e: e["batch_id"])[::-1][:limit]
        ],
        "totals": {
            "read": read,
            "published": published,
            "quarantined": 0,
            "suppressed": read - published - held,
            "held": held,
        },
        "closed_windows": order[::-1][:limit],
    }


def record(journal: BatchJournal, batch_id: int, topic: str, row: tuple) -> None:
    state, read, held, windows = row
    journal.record_plan(batch_id, topic, {"ranges": []})
    journal.set_state(
        batch_id, state, records_read=read, records_published=read // 2, records_held=held
    )
    if windows:  # as the event-time step records the windows a batch closed
        entry = journal.batch(batch_id)
        entry["windows"] = [
            {"topic": t, "partition": p, "window_start": f"2026-12-02T00:{m:02d}:00Z",
             "window_end": f"2026-12-02T00:{m:02d}:59Z", "dataset": d, "score": s}
            for t, p, m, d, s in windows
        ]  # fmt: skip
        journal._write(entry)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(batch, min_size=1, max_size=6), min_size=1, max_size=3),
    st.integers(1, 3),
    st.integers(1, 12),
    st.booleans(),
)
def test_the_report_from_headers_is_the_report_of_a_scan(rounds, bound, limit, overlap):
    with tempfile.TemporaryDirectory() as folder:
        journal = BatchJournal(Path(folder))
        batch_id = 0
        for rows in rounds:
            for row in rows:
                batch_id += 1
                record(journal, batch_id, "t" if batch_id % 3 else "u", row)
            for topic in ("t", "u"):
                journal.journal_ends(topic)  # what a worker's batch asks, then it compacts
                if overlap and (
                    done := [e for e in journal.entries(topic) if e["state"] == "done"]
                ):
                    # another worker compacted some of them at once
                    path, data = journal_segments.segment(f"journal/{topic}", done[-2:])
                    journal.store.write_bytes(path, data)
                journal.compact(topic, at_least=bound)
            assert journal_report(journal, limit) == scan(journal.entries(), limit)
