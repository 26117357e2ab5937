"""What an operator relies on to trust a running ``rda run``: liveness that sees zombies and
silent hosts, a backlog read from the partitions furthest behind, a lag gauge that is true
between batches, retries and failures counted by kind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_helpers import wait_for

from pipelines.kafka_source import open_source
from sinks.layout import DataLayout
from streaming.driver import RunConfig, _kafka_positions, _new_plan
from streaming.journal import BatchJournal
from streaming.metrics import RunMetrics
from streaming.retry import Backoff, GaveUp
from streaming.schedule import fair_shares
from streaming.workers import Heartbeat, is_alive, prune_dead, running_workers


def test_a_killed_worker_not_yet_reaped_is_dead(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from streaming.workers import this_worker; print(this_worker(), "
         "flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = child.stdout.readline().strip()
    assert is_alive(worker, tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    wait_for(lambda: not is_alive(worker, tmp_path), 10, "the zombie to count as dead")
    assert child.poll() is not None  # reaped only now: it was a zombie while judged dead


def test_heartbeat_files_of_dead_workers_are_pruned_and_live_ones_kept(tmp_path):
    here = socket.gethostname()
    dead_here = f"{here}/999999999/1"  # no such pid
    silent = "another-host.example/17/5"
    with Heartbeat(tmp_path, silent, lease_s=60) as beat:
        stale = time.time() - 121  # two leases: the slack for clocks is gone too
        os.utime(beat.path, (stale, stale))
        (tmp_path / dead_here.replace("/", "_")).write_text(dead_here + "\n")
        fresh = "third-host.example/1/1"
        (tmp_path / fresh.replace("/", "_")).write_text(fresh + "\n")
        assert sorted(prune_dead(tmp_path)) == sorted([dead_here, silent])
        assert running_workers(tmp_path) == [fresh]


def test_a_backlog_is_read_from_the_partitions_furthest_behind():
    assert fair_shares({0: 20_000, 1: 60_000, 2: 40_000}, 30_000, least=16_384) == {
        0: 0,
        1: 30_000,
        2: 0,
    }
    level = dict.fromkeys(range(4), 51_530)  # the bench's backlog: ties go to the lowest
    assert fair_shares(level, 25_765, least=16_384) == {0: 25_765, 1: 0, 2: 0, 3: 0}


def test_a_budget_worth_several_partitions_is_shared_between_the_furthest_behind():
    backlogs = {0: 60_000, 1: 60_000, 2: 10, 3: 50_000}
    assert fair_shares(backlogs, 40_000, least=16_384) == {0: 20_000, 1: 20_000, 2: 0, 3: 0}


def test_what_the_partitions_read_do_not_need_goes_to_the_others():
    backlogs = dict.fromkeys(range(4), 3_000)
    assert fair_shares(backlogs, 10_000, least=16_384) == {0: 3_000, 1: 2_334, 2: 2_333, 3: 2_333}


def test_a_backlog_within_the_budget_is_read_whole():
    assert fair_shares({0: 3, 1: 4}, 100, least=16_384) == {0: 3, 1: 4}


def test_without_a_least_share_every_partition_shares_the_budget():
    assert fair_shares(dict.fromkeys(range(4), 1000), 100) == dict.fromkeys(range(4), 25)
    assert fair_shares({0: 1000, 1: 5, 2: 1000, 3: 0}, 100) == {0: 48, 1: 5, 2: 47, 3: 0}


def test_records_that_do_not_divide_go_to_the_partitions_furthest_behind():
    assert fair_shares({0: 9, 1: 12, 2: 9, 3: 10}, 2) == {0: 0, 1: 1, 2: 0, 3: 1}


@given(
    st.dictionaries(st.integers(0, 7), st.integers(0, 100_000), max_size=8),
    st.integers(0, 300_000),
    st.integers(0, 40_000),
)
def test_shares_spend_the_budget_within_each_backlog(backlogs, budget, least):
    shares = fair_shares(backlogs, budget, least)
    assert set(shares) == set(backlogs)
    assert all(0 <= shares[p] <= backlogs[p] for p in backlogs)
    assert sum(shares.values()) == min(budget, sum(backlogs.values()))


def test_under_a_backlog_each_batch_reads_the_partition_furthest_behind(
    broker, topic, data_dir, publish
):
    publish(broker, topic, nodes=12, duration_s=20)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir, max_batch_records=40)
    positions = _kafka_positions(config, open_source(broker.bootstrap))
    left = dict(positions.ends)  # nothing read yet: every record of each partition waits
    with BatchJournal(DataLayout(data_dir).journal) as journal:
        for _ in range(4):  # each plan journaled: the next reads on after it
            plan = _new_plan(config, journal, None, positions, "w")
            (read,) = plan["ranges"]
            furthest = max(sorted(left), key=left.__getitem__)  # ties: the lowest
            assert (read["partition"], read["end"] - read["start"]) == (furthest, 40)
            left[furthest] -= 40
            journal.record_plan(plan["batch_id"], topic, plan, owner="w")


def test_with_no_least_share_every_partition_gets_its_part_of_a_batch(
    broker, topic, data_dir, publish
):
    publish(broker, topic, nodes=12, duration_s=20)
    config = RunConfig(
        broker.bootstrap, topic, f"g-{topic}", data_dir, max_batch_records=40,
        min_partition_share=0,
    )  # fmt: skip
    positions = _kafka_positions(config, open_source(broker.bootstrap))
    with BatchJournal(DataLayout(data_dir).journal) as journal:
        plan = _new_plan(config, journal, None, positions, "w")
    shares = {r["partition"]: r["end"] - r["start"] for r in plan["ranges"]}
    assert shares == dict.fromkeys(range(4), 10)  # not 40 from partition 0


def test_retries_and_failures_are_counted_by_what_failed():
    run_metrics = RunMetrics()
    backoff = Backoff(base=0.01, cap=0.01, attempts=3, on_failure=run_metrics.failed)
    unreachable = open_source("127.0.0.1:1", 0.5)  # nothing listens there
    with pytest.raises(GaveUp) as gave_up:
        backoff.call("partitions", lambda: unreachable.partitions("t"), threading.Event())
    assert gave_up.value.kind == "broker"
    registry = run_metrics.registry
    assert registry.get_sample_value("rda_retries_total", {"kind": "broker"}) == 2
    assert registry.get_sample_value("rda_failures_total", {"kind": "broker"}) == 3
