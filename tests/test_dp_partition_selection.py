"""DP partition selection of ``session_counts_dp.v1``: which cells get a row, and what it says.

A row appears only if its cell's noisy count reaches tau (Laplace thresholding), never merely
because the cell had a session; the rows' lineage says nothing of the sessions (red team,
attack 2a: a lone session k-anonymity suppressed made a row carrying its own Kafka offset).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import random

import pyarrow as pa
import pytest
from event_time_harness import TOPIC, partitioned
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.aggregate import (
    DATASET,
    empty_ledger,
    laplace,
    partition_threshold,
    window_counts,
)
from pipelines.anonymize import PseudonymKey
from pipelines.protect import Protection
from pipelines.staged import SUBSCRIBER
from pipelines.standardize import standardize_routed
from schemas.aggregates import SESSION_COUNTS_DP_V1
from schemas.published import DEFAULT_PRIVACY, PrivacySettings
from simulator.fleet import generate
from simulator.ground import build_fleet
from simulator.messages import Message, encode_report

KEY = PseudonymKey(bytes(range(32)))
UTC = dt.timezone.utc
START_MS = 1_764_000_000_000  # 2025-11-24 16:00:00 UTC, an hour's start
HOUR_US = 3_600_000_000
WINDOW_US = int(dt.datetime(2025, 11, 24, 10, tzinfo=UTC).timestamp()) * 1_000_000
# Noise negligible and tau just below 1: every candidate (a cell with a counted subscriber) is
# released with its exact count.
EVERY_CANDIDATE = PrivacySettings(dp_epsilon=1e9, dp_delta=1 - 1e-12, dp_budget_per_epoch=1e10)
# Noise of scale 100 and tau = 1 + 100 ln(2e-6) ~ -1311: even a candidate counting nobody would
# be released, so a cell that is absent was no candidate.
NO_CANDIDATE_HIDDEN = PrivacySettings(dp_epsilon=0.01, dp_delta=1 - 1e-6, dp_budget_per_epoch=0.01)


def noisy_count(count: int, cell: int, window_us: int, scope: str, privacy: PrivacySettings):
    """The count plus its Laplace draw, recomputed: HMAC-SHA256 under the epoch key of
    ``dp-noise|<scope>|<cell>|<window>``, its first 8 bytes a uniform in (0, 1)."""
    epoch = window_us // (privacy.epoch_seconds * 1_000_000)
    epoch_key = hmac.new(KEY.secret, f"rda-pseudonym-epoch:{epoch}".encode(), "sha256").digest()
    label = f"dp-noise|{scope}|{cell}|{window_us}".encode()
    draw = int.from_bytes(hmac.digest(epoch_key, label, "sha256")[:8], "big")
    return count + laplace((draw + 0.5) / 2**64, 1 / privacy.dp_epsilon)


def window_sessions(
    people_and_cells: list[tuple[str, int]],
    offsets: list[int] | None = None,
    ingest_us: list[int] | None = None,
    partition: int = 0,
) -> pa.Table:
    """Staged session rows of one window, in stream order: (subscriber key, cell) each."""
    n = len(people_and_cells)
    ingest = ingest_us if ingest_us is not None else [WINDOW_US + 660_000_000] * n
    return pa.table(
        {
            "cell_id": [cell for _, cell in people_and_cells],
            SUBSCRIBER: [who for who, _ in people_and_cells],
            "source_partition": pa.array([partition] * n, pa.int32()),
            "source_offset": pa.array(offsets if offsets is not None else range(n), pa.int64()),
            "ingest_time": pa.array(ingest, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )


def session_report(node: str, ts_ms: int, imsi: str, cell: int, end_ms: int) -> Message:
    report = {
        "format": "rda.node.v1",
        "kind": "subscriber_session",
        "node": node,
        "ts_ms": ts_ms,
        "subscriber": {"imsi": imsi, "msisdn": "49151" + imsi[-8:], "imei": "353320119999991"},
        "session": {
            "cell": cell,
            "start_ms": end_ms - 600_000,
            "end_ms": end_ms,
            "ue_ip": "100.64.77.9",
            "bytes_up": 1000,
            "bytes_down": 50000,
        },
    }
    return Message(node.encode(), encode_report(report), ts_ms)


def test_a_lone_suppressed_session_makes_no_row_and_the_released_cells_are_those_reaching_tau(
    tmp_path,
):
    fleet = build_fleet(2, random.Random(3))
    cell_a, cell_b = fleet[0].cells[0].eci, fleet[1].cells[0].eci
    messages = list(generate(2, 120, 1, START_MS, 3, 0.0, sessions=False, quality_fraction=0.0))
    t = START_MS + 60_000
    lone = session_report(fleet[0].node_id, t, "262019876543210", cell_a, t - 300)
    crowd = [
        session_report(fleet[1].node_id, t + i, f"2620155555{i:05d}", cell_b, t - 200)
        for i in range(30)
    ]
    raw = partitioned(sorted([*messages, lone, *crowd], key=lambda m: m.timestamp_ms), 1)[0]
    result = Protection(str(tmp_path), _key=KEY)(raw, standardize_routed(raw, "rda.node.v1"))

    # k-anonymity (k = 5) withholds the lone session; the 30 in cell B are published.
    (lone_offset,) = [i for i, v in enumerate(raw.column("value").to_pylist()) if v == lone.value]
    assert result.suppressed.column("offset").to_pylist() == [lone_offset]
    published_cells = result.published["subscriber_session.v1"].column("cell_id").to_pylist()
    assert published_cells == [cell_b] * 30
    # Both cells are candidates (a counted subscriber each); only B's noisy count reaches tau.
    tau = partition_threshold(DEFAULT_PRIVACY)
    window_us = START_MS * 1000  # the sessions ended in 16:00-17:00
    noisy = {
        cell: noisy_count(count, cell, window_us, TOPIC, DEFAULT_PRIVACY)
        for cell, count in ((cell_a, 1), (cell_b, 30))
    }
    assert noisy[cell_a] < tau <= noisy[cell_b]
    rows = result.published[DATASET].to_pylist()
    assert [r["cell_id"] for r in rows] == [c for c in sorted(noisy) if noisy[c] >= tau]
    assert [r["noisy_subscribers"] for r in rows] == [round(noisy[cell_b])]


@pytest.mark.parametrize("left_out_by", ["budget", "window bound"])
def test_a_subscriber_left_out_of_the_counts_makes_no_candidate(left_out_by):
    crowd = [(who, 7) for who in "bcd"]
    if left_out_by == "budget":  # x spent the epoch's budget in an earlier window
        epoch = WINDOW_US // (86_400 * 1_000_000)
        ledger = pa.table(
            {"subscriber": ["x"], "epoch": [epoch], "spent": [0.01]}, schema=empty_ledger().schema
        )
        rows = window_sessions([("x", 9), *crowd])
    else:  # one cell per window: x's first session, in cell 7, is the one counted
        ledger = empty_ledger()
        rows = window_sessions([("x", 7), ("x", 9), *crowd])
    counts, _ = window_counts(rows, WINDOW_US, "t", KEY, NO_CANDIDATE_HIDDEN, ledger)
    # Cell 9 would be released had it been a candidate, even counting nobody.
    assert noisy_count(0, 9, WINDOW_US, "t", NO_CANDIDATE_HIDDEN) >= partition_threshold(
        NO_CANDIDATE_HIDDEN
    )
    assert counts.column("cell_id").to_pylist() == [7]


people = st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 4)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(people=people, data=st.data())
def test_the_rows_lineage_is_the_same_whatever_the_sessions_offsets_and_ingest_times(people, data):
    n = len(people)
    gaps = data.draw(st.lists(st.integers(1, 10**9), min_size=n, max_size=n))
    offsets = [sum(gaps[: i + 1]) for i in range(n)]  # other offsets, the same stream order
    ingest = data.draw(st.lists(st.integers(0, 2**50), min_size=n, max_size=n))
    scope = "t/p3"
    sessions = window_sessions(people, partition=3)
    first, _ = window_counts(sessions, WINDOW_US, "t", KEY, EVERY_CANDIDATE, empty_ledger(), scope)
    sessions = window_sessions(people, offsets, ingest, partition=3)
    moved, _ = window_counts(sessions, WINDOW_US, "t", KEY, EVERY_CANDIDATE, empty_ledger(), scope)
    assert moved.equals(first)
    hour = dt.datetime(2025, 11, 24, 10, tzinfo=UTC)
    firsts: dict[str, int] = {}
    for who, cell in people:
        firsts.setdefault(who, cell)  # one cell per subscriber and window: their first
    cells = sorted(set(firsts.values()))
    assert first.column("cell_id").to_pylist() == cells
    lineage = first.select(["source_topic", "source_partition", "source_offset", "ingest_time"])
    assert lineage.to_pylist() == [
        {"source_topic": "t", "source_partition": 3, "source_offset": 0, "ingest_time": hour}
    ] * len(cells)


def test_the_threshold_for_the_defaults_is_one_plus_ln_of_half_over_delta():
    # epsilon 1, one cell per subscriber and window, delta 1e-6: tau = 1 - ln(2 delta) / epsilon
    tau = partition_threshold(DEFAULT_PRIVACY)
    assert tau == pytest.approx(1 + math.log(500_000), rel=1e-12)
    assert tau == pytest.approx(14.122363377404328, rel=1e-12)
    # A cell counting one person alone is released with probability delta exactly.
    assert 0.5 * math.exp(-(tau - 1) * DEFAULT_PRIVACY.dp_epsilon) == pytest.approx(1e-6)


def test_the_manifest_states_delta_and_tau_next_to_epsilon(tmp_path):
    protection = Protection(str(tmp_path), _key=KEY)
    stats = [{"windows": 2, "epochs": [20416]}]
    section = protection.manifest_section(SESSION_COUNTS_DP_V1, stats, None)
    dp = section["differential_privacy"]
    assert (dp["epsilon"], dp["delta"]) == (1.0, 1e-6)
    assert dp["partition_selection"]["tau"] == partition_threshold(DEFAULT_PRIVACY)
    assert dp["partition_selection"]["delta_per_cell"] == pytest.approx(1e-6, rel=1e-9)
    assert dp["budget"]["max_delta_per_subscriber_per_window"] == 1e-6
    assert dp["budget"]["max_delta_per_subscriber_per_epoch"] == pytest.approx(8e-6, rel=1e-9)
    assert dp["composition"]["max_epsilon_per_subscriber"] == 2.0
    assert dp["composition"]["max_delta_per_subscriber"] == pytest.approx(2e-6, rel=1e-9)
    json.dumps(section)  # a manifest is JSON
