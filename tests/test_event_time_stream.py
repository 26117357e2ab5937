"""Event time through the real pipeline: the broker, Beam, the sequencer, the embedded chain.

The same stream cut into batches of uneven sizes, with the process "killed" (an exception) right
after random journal steps and the batch then redone, publishes what one batch does; sessions
wait, privately, for their window, and ``rda status`` and the metrics say how many and until
when; a session arriving after its window closed is quarantined and the window stays as it was.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from session_rows import session_at

from pipelines.kafka_source import open_source
from simulator.fleet import generate
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming import faults, journal_segments
from streaming.chain import open_chain
from streaming.config import RunSettings, TopicSettings
from streaming.driver import RunConfig, run_batch
from streaming.journal import BatchJournal
from streaming.metrics import RunMetrics
from streaming.status import status_report
from validators.event_time import WindowSettings

START_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
WINDOWS = WindowSettings(window_s=10, allowed_lateness_s=2)  # several close mid-stream
SESSIONS = "subscriber_session.v1"


@pytest.fixture(autouse=True)
def same_key(monkeypatch):
    """One pseudonym key for every data directory, so their rows can be compared."""
    monkeypatch.setenv("RDA_PSEUDONYM_KEY", "5e" * 32)


class Killed(Exception):
    pass


def published(data: Path) -> dict[str, list]:
    db = duckdb.connect(str(DataLayout(data).catalog), read_only=True)
    try:
        views = db.execute("SELECT dataset, view_name FROM datasets ORDER BY 1").fetchall()
        rows = {
            dataset: sorted(map(str, db.execute(f'SELECT * FROM "{view}"').fetchall()))
            for dataset, view in views
        }
        rows["quarantine"] = db.execute(
            'SELECT partition, "offset", reason_code FROM quarantine ORDER BY 1, 2'
        ).fetchall()
        rows["windows"] = db.execute(
            "SELECT dataset, window_start, topic, score, counts FROM window_quality "
            "ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        db.close()
    suppressed = []
    for path in sorted((DataLayout(data).private / "suppressed").rglob("*.parquet")):
        table = pq.read_table(path, columns=["partition", "offset"])
        suppressed += zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
    rows["suppressed"] = sorted(suppressed)
    return rows


def drain(config: RunConfig, sizes: list[int], kill_after: set[int], monkeypatch) -> list:
    """Batches of ``sizes`` records, then the rest; killed right after the listed journal steps
    (counted over the whole run) and redone, as a restarted process would."""
    steps = iter(range(1, 10_000))
    real = faults.journaled

    def journaled(step: str) -> None:
        real(step)
        if next(steps) in kill_after:
            raise Killed(step)

    monkeypatch.setattr(faults, "journaled", journaled)
    source, chain = open_source(config.bootstrap), open_chain("embedded", None, None)
    summaries = []
    for size in [*sizes, 10**9]:
        sized = replace(config, max_batch_records=size)
        while True:
            try:
                summary = run_batch(sized, source, chain.anchor)
            except Killed:
                continue
            break
        if summary is not None:
            summaries.append(summary)
    return summaries


@pytest.mark.slow
def test_uneven_batches_killed_between_steps_publish_what_one_batch_does(
    broker, topic, tmp_path, monkeypatch
):
    messages = generate(3, 40, 1, START_MS, 14, 0.03, sessions=True, quality_fraction=0.06)
    produced = produce(broker.bootstrap, topic, messages).messages
    config = RunConfig(
        broker.bootstrap, topic, f"one-{topic}", tmp_path / "one", windows=WINDOWS,
        flush_windows=True, max_chunk_records=70,
    )  # fmt: skip
    whole = drain(config, [], set(), monkeypatch)
    rng = random.Random(19)
    sizes = [rng.choice([1, 7, 40, 90, 150]) for _ in range(6)]
    cut = replace(config, group=f"cut-{topic}", data_dir=tmp_path / "cut")
    monkeypatch.setattr(journal_segments, "SEGMENT_ENTRIES", 2)  # compacted as it goes
    pieces = drain(cut, sizes, {3, 9, 14, 22}, monkeypatch)
    assert len(whole) == 1 and pieces  # a batch killed once done has no summary: count them
    with BatchJournal(DataLayout(tmp_path / "cut").journal, read_only=True) as journal:
        assert len(journal.entries()) >= 5  # the input runs out before the last sizes
    assert list((tmp_path / "cut" / "journal" / topic).glob("*" + journal_segments.SUFFIX))
    for data in (tmp_path / "one", tmp_path / "cut"):  # a batch killed once done has no summary
        with BatchJournal(DataLayout(data).journal, read_only=True) as journal:
            totals = journal.totals()
        assert totals["read"] == produced and totals["held"] == 0 and totals["suppressed"] > 0
    one, many = published(tmp_path / "one"), published(tmp_path / "cut")
    assert one[SESSIONS] and one["suppressed"] and one["windows"]
    assert set(one) == set(many)
    for name in sorted(one):
        assert one[name] == many[name], name


def test_status_and_metrics_show_the_held_sessions_and_until_when(broker, topic, tmp_path):
    messages = [session_at(START_MS + i * 1000, 2560000, f"2620100000000{i:02d}") for i in range(6)]
    produce(broker.bootstrap, topic, messages, partitions=1)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", tmp_path / "data")
    summary = run_batch(
        config, open_source(broker.bootstrap), open_chain("embedded", None, None).anchor
    )
    assert (summary.read, summary.published, summary.held, summary.held_total) == (6, 0, 6, 6)
    # The hour 16:00 closes once the watermark passes 17:00 plus the 300 s allowed lateness.
    assert summary.held_until == "2025-11-24T17:05:00Z"
    metrics = RunMetrics()
    metrics.batch_done(topic, summary, 1.0)
    assert metrics.registry.get_sample_value("rda_records_held", {"topic": topic}) == 6
    until = metrics.registry.get_sample_value("rda_held_until_seconds", {"topic": topic})
    assert until == START_MS / 1000 + 3900
    settings = RunSettings(
        topics={topic: TopicSettings()}, bootstrap=broker.bootstrap, group=f"g-{topic}",
        data_dir=tmp_path / "data",
    )  # fmt: skip
    held = status_report(settings)["event_time"]["held"][topic]
    assert held["held_records"] == 6 and held["held_until"] == "2025-11-24T17:05:00Z"
    assert held["windows"] == [
        {
            "window_start": "2025-11-24T16:00:00Z",
            "records": 6,
            "closes_at_watermark": "2025-11-24T17:05:00Z",
        }
    ]
    assert not (tmp_path / "data" / "published" / SESSIONS).exists()  # nothing published yet


def test_a_session_after_its_window_closed_is_quarantined_and_the_window_stays(
    broker, topic, tmp_path
):
    cell, hour = 2560000, 3_600_000
    on_time = [session_at(START_MS + i * 1000, cell, f"2620100000000{i:02d}") for i in range(5)]
    # A report an hour and six minutes later moves the watermark past 17:05: 16:00 closes.
    later = [session_at(START_MS + hour + 360_000, cell + 1, "262010000000099")]
    straggler = [session_at(START_MS + 30_000, cell, "262010000000050")]  # ended at 16:00:30
    source, chain = open_source(broker.bootstrap), open_chain("embedded", None, None)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", tmp_path / "data")
    produce(broker.bootstrap, topic, on_time + later, partitions=1)
    first = run_batch(config, source, chain.anchor)
    window = [c for c in first.windows_closed if c["dataset"] == SESSIONS]
    assert [w["window_start"] for w in window] == ["2025-11-24T16:00:00Z"]
    files = sorted((tmp_path / "data" / "published" / SESSIONS).glob("shards/*/data/*.parquet"))
    before = {p.name: p.read_bytes() for p in files}
    assert sum(pq.read_metadata(p).num_rows for p in files) == 5  # k = 5: published

    produce(broker.bootstrap, topic, straggler, partitions=1)
    second = run_batch(config, source, chain.anchor)
    assert (second.read, second.quarantined, second.reasons) == (1, 1, {"window_closed": 1})
    after = sorted((tmp_path / "data" / "published" / SESSIONS).glob("shards/*/data/*.parquet"))
    assert {p.name: p.read_bytes() for p in after} == before
    db = duckdb.connect(str(DataLayout(tmp_path / "data").catalog), read_only=True)
    try:
        (reason,) = db.execute("SELECT reason FROM quarantine").fetchone()
    finally:
        db.close()
    assert reason.startswith("its event-time window starting 2025-11-24T16:00:00Z had closed")


def test_sessions_held_by_a_done_batch_are_published_by_a_later_one_from_the_state(
    broker, topic, tmp_path
):
    """A done batch's staged files are removed: what it held lives on in the state."""
    cell, hour = 2560000, 3_600_000
    held = [session_at(START_MS + i * 1000, cell, f"2620100000000{i:02d}") for i in range(6)]
    source, chain = open_source(broker.bootstrap), open_chain("embedded", None, None)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", tmp_path / "data")
    produce(broker.bootstrap, topic, held, partitions=1)
    first = run_batch(config, source, chain.anchor)
    staging = tmp_path / "data" / "private" / "staging"
    assert (first.held, list(staging.rglob("*.parquet"))) == (6, [])
    later = session_at(START_MS + hour + 360_000, cell + 1, "262010000000099")
    produce(broker.bootstrap, topic, [later], partitions=1)
    second = run_batch(config, source, chain.anchor)
    assert (second.published, second.held_total) == (6, 1)  # 16:00 closed: k = 5 is met
    files = (tmp_path / "data" / "published" / SESSIONS).glob("shards/*/data/*.parquet")
    assert sum(pq.read_metadata(p).num_rows for p in files) == 6


def test_a_record_the_stage_rejects_is_never_also_a_duplicate(broker, topic, tmp_path):
    """Rows of records the stage quarantined are kept for the quality figures only: the
    duplicate check never sees them, so such a record is quarantined once."""
    (report,) = [m for m in generate(1, 1, 1, START_MS, 3) if b'"radio_kpi"' in m.value][:1]
    source, chain = open_source(broker.bootstrap), open_chain("embedded", None, None)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", tmp_path / "data")
    produce(broker.bootstrap, topic, [report], partitions=1)
    first = run_batch(config, source, chain.anchor)
    # The same report again, stamped by the broker two hours before its event time.
    again = replace(report, timestamp_ms=report.timestamp_ms - 7_200_000)
    produce(broker.bootstrap, topic, [again], partitions=1)
    second = run_batch(config, source, chain.anchor)
    assert (first.published, first.quarantined) == (1, 0)
    assert (second.read, second.published, second.quarantined) == (1, 0, 1)
    assert second.reasons == {"clock_skew": 1}
