"""Event time: what is published does not depend on how the stream was cut into batches.

The property test drives the batch logic in-process (``event_time_harness``): the same stream,
cut into batches of random sizes — one record to everything, partitions progressing unevenly —
with crashes between any two file writes or journal steps, must publish the same rows (flags
and DP counts included), suppress the same records, quarantine the same ones and give every
closed window the same quality figures as one batch, row by row.
"""

from __future__ import annotations

import functools
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from event_time_harness import CrashPlan, Harness, crashing_writes, partitioned
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.anonymize import PseudonymKey
from pipelines.protect import Protection
from pipelines.standardize import standardize_routed
from schemas.published import PrivacySettings
from simulator.fleet import generate
from validators.event_time import NO_TIME, WindowSettings, closed_through, late, watermarks
from validators.sequence import SequenceInputs, SequenceSettings, SequenceState, check_sequences

START_MS = 1_764_000_000_000
PARTITIONS = 2
# Short windows, so that several close mid-stream; k and the DP budget small enough to bite, and
# delta large enough that a three-node fleet's cells reach the DP release threshold (tau 1.2).
WINDOWS = WindowSettings(window_s=10, allowed_lateness_s=2)
PRIVACY = PrivacySettings(k=2, dp_budget_per_epoch=2.0, dp_delta=0.4)
KEY = PseudonymKey(bytes(range(32)))


def stream() -> list:
    """A fleet with sessions and every quality defect; repeated keys are the sequencer's."""
    messages = generate(3, 30, 1, START_MS, 14, 0.05, sessions=True, quality_fraction=0.06)
    return [m for m in messages if m.defect != "duplicate"]


def protection(root: Path) -> Protection:
    return Protection(str(root / "private"), PRIVACY, windows=WINDOWS, staged_only=True, _key=KEY)


def outcome(harness: Harness) -> dict:
    return {
        "published": harness.published(),
        "suppressed": harness.private_records("suppressed"),
        "quarantined": harness.private_records("quarantine"),
        "windows": harness.windows(),
        "dataset counts": harness.dataset_counts(),
    }


@functools.cache
def one_batch() -> dict:
    raw = partitioned(stream(), PARTITIONS)
    with tempfile.TemporaryDirectory() as folder:
        harness = Harness(Path(folder), raw, protection(Path(folder)))
        harness.run([{p: batch.num_rows for p, batch in raw.items()}], chunk=10_000)
        assert harness.held[-1] == 0  # the end of input closed every window
        return outcome(harness)


def test_one_batch_publishes_holds_suppresses_and_closes_windows():
    reference = one_batch()
    assert set(reference["published"]) >= {"radio_kpi.v1", "subscriber_session.v1"}
    assert "session_counts_dp.v1" in reference["published"]
    codes = {code for *_, code in reference["quarantined"]}
    assert {"teleport", "clock_skew"} <= codes
    flags = {
        flag
        for rows in reference["published"].values()
        for row in rows
        for flag in (row["quality_flags"] or "").split(",")
    }
    assert {"late", "flat_line", "counter_reset"} <= flags
    assert reference["suppressed"] and len(reference["windows"]) >= 3


cuts = st.lists(
    st.fixed_dictionaries({p: st.integers(0, 400) for p in range(PARTITIONS)}),
    min_size=1,
    max_size=10,
)


@pytest.mark.slow
@settings(max_examples=8, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=cuts,
    small=st.booleans(),
    chunk=st.sampled_from([7, 40]),
    crashes=st.lists(st.integers(1, 40), max_size=4),
)
def test_any_cut_into_batches_with_crashes_anywhere_publishes_what_one_batch_does(
    cuts, small, chunk, crashes
):
    raw = partitioned(stream(), PARTITIONS)
    if small:  # a record or a few at a time: the hardest cut
        cuts = [{p: n % 7 for p, n in c.items()} for c in cuts]
    cuts = [*cuts, {p: batch.num_rows for p, batch in raw.items()}]  # then the rest: end of input
    with tempfile.TemporaryDirectory() as folder:
        harness = Harness(Path(folder), raw, protection(Path(folder)), CrashPlan(list(crashes)))
        with crashing_writes(harness.crash):
            harness.run(cuts, chunk=chunk)
        assert harness.held[-1] == 0
        assert outcome(harness) == one_batch()


# -- the watermark model, on its own ---------------------------------------------------------

HOUR_US = 3_600_000_000
HOURLY = WindowSettings()  # an hour, 300 s allowed lateness


def test_an_orderly_backfill_of_old_data_is_not_late_however_old():
    # A week-old hour replayed in order: the watermark is as old as the data.
    times = np.arange(0, HOUR_US, 60_000_000) - 7 * 24 * HOUR_US
    marks = watermarks(
        np.zeros(len(times), np.int64), np.arange(len(times)), times, np.ones(len(times), bool), {}
    )
    assert not late(times, marks.before, None, HOURLY).any()


def test_a_row_is_late_once_its_partition_passed_its_window_end_plus_the_allowed_lateness():
    hour = 10 * HOUR_US
    times = np.array(
        [hour + 1, hour + HOUR_US + 299_000_000, hour + 2, hour + HOUR_US + 301_000_000, hour + 3]
    )
    marks = watermarks(np.zeros(5, np.int64), np.arange(5), times, np.ones(5, bool), {})
    # 10:00 closes at 11:05: the straggler after 11:04:59 is on time, the one after 11:05:01 late.
    assert late(times, marks.before, None, HOURLY).tolist() == [False, False, False, False, True]


def test_another_partitions_progress_never_makes_a_row_late():
    hour = 10 * HOUR_US
    partitions = np.array([1, 0])  # partition 1 far ahead, then partition 0's straggler
    times = np.array([hour + 5 * HOUR_US, hour + 1])
    marks = watermarks(partitions, np.array([0, 0]), times, np.ones(2, bool), {})
    assert late(times, marks.before, None, HOURLY).tolist() == [False, False]
    # The topic closes through the slowest partition only.
    assert closed_through(None, marks.after, [0, 1], HOURLY) == hour + 1


def test_a_quarantined_records_time_does_not_move_the_watermark():
    times = np.array([10 * HOUR_US, 99 * HOUR_US, 10 * HOUR_US + 5])
    marks = watermarks(
        np.zeros(3, np.int64), np.arange(3), times, np.array([True, False, True]), {}
    )
    assert marks.before.tolist() == [NO_TIME, 10 * HOUR_US, 10 * HOUR_US]


@given(
    times=st.lists(st.integers(0, 10 * HOUR_US), min_size=1, max_size=60),
    cut=st.integers(0, 60),
)
def test_watermarks_continued_from_a_cut_equal_those_of_the_whole(times, cut):
    times = np.array(times, np.int64)
    partitions = np.array([t % 3 for t in range(len(times))], np.int64)
    offsets = np.arange(len(times)) // 3
    passed = times % 7 != 0
    whole = watermarks(partitions, offsets, times, passed, {})
    cut = min(cut, len(times))
    first = watermarks(partitions[:cut], offsets[:cut], times[:cut], passed[:cut], {})
    rest = watermarks(partitions[cut:], offsets[cut:], times[cut:], passed[cut:], first.after)
    assert np.concatenate([first.before, rest.before]).tolist() == whole.before.tolist()
    assert rest.after == whole.after


def test_a_week_old_backfill_read_today_is_not_flagged_late(tmp_path):
    week_ago = START_MS - 7 * 24 * 3_600_000
    messages = list(generate(4, 60, 1, week_ago, 2))  # orderly, no defects
    raw = partitioned(messages, 1)[0]
    today = pa.array([START_MS] * raw.num_rows, pa.int64())  # all ingested now
    raw = raw.set_column(raw.schema.get_field_index("timestamp_ms"), "timestamp_ms", today)
    result = Protection(str(tmp_path), _key=KEY)(raw, standardize_routed(raw, "rda.node.v1"))
    flags = [
        f for rows in result.published.values() for f in rows.column("quality_flags").to_pylist()
    ]
    assert len(flags) == raw.num_rows and set(flags) == {None}


def test_reports_without_a_node_have_no_sequence_and_leave_no_state():
    far_apart = SequenceInputs(
        partition=pa.array([0, 0], pa.int32()),
        node=pa.array([None, None], pa.string()),  # outside speed tests (M-Lab) name no node
        time_us=pa.array([0, 1_000_000], pa.int64()),
        lat=pa.array([52.5, -33.9]),
        lon=pa.array([13.4, 151.2]),
    )
    result, state = check_sequences(
        far_apart, SequenceState.empty("speed_test"), SequenceSettings()
    )
    assert result.teleport_km.null_count == 2
    assert state.teleport.num_rows == 0


def test_a_snapshot_lacking_a_sequence_table_stops_the_next_batch_naming_it(tmp_path):
    from sinks import state_store
    from sinks.state_store import StateDamaged

    raw = partitioned(stream(), PARTITIONS)
    harness = Harness(tmp_path, raw, protection(tmp_path))
    harness.run([{p: 100 for p in raw}], chunk=10_000, flush_last=False)
    tables = sorted((tmp_path / "private" / "state").rglob("snapshots/*/sequence.*.parquet"))
    assert tables
    tables[0].unlink()
    state_store._LAST_WRITTEN.clear()  # a new process: read from the files
    with pytest.raises(StateDamaged, match=f"lacks {tables[0].stem}"):
        harness.run([{p: 100 for p in raw}], chunk=10_000)


def _without_end(messages: list) -> list:
    """The stream with its first subscriber session's end left out (the schema allows it)."""
    import dataclasses
    import json

    out, done = [], False
    for m in messages:
        document = json.loads(m.value) if not done and m.defect is None else None
        if document and document.get("kind") == "subscriber_session":
            del document["session"]["end_ms"]
            m, done = dataclasses.replace(m, value=json.dumps(document).encode()), True
        out.append(m)
    assert done
    return out


def test_a_session_without_an_end_is_quarantined_and_every_window_still_closes(tmp_path):
    """Its event time is its end: with none, it reached the event-time step as int64's minimum,
    whose window (the year 294,247) stopped the batch, or stayed open for ever (red team)."""
    raw = partitioned(_without_end(stream()), PARTITIONS)
    harness = Harness(tmp_path, raw, protection(tmp_path))
    harness.run([{p: batch.num_rows for p, batch in raw.items()}], chunk=10_000)
    assert harness.held[-1] == 0  # the end of input closed every window
    codes = Counter(code for _, _, code in harness.private_records("quarantine"))
    reference = Counter(code for _, _, code in one_batch()["quarantined"])
    assert codes - reference == Counter({"missing_required": 1})
    assert harness.windows() and all(w["window_start"] < "2100" for w in harness.windows())
