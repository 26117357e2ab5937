"""What an operator relies on to trust a running ``rda run``: liveness that sees zombies and
silent hosts, a backlog read a few partitions a batch, each in turn, a lag gauge that is true
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
from child_processes import spawn
from hypothesis import given
from hypothesis import strategies as st
from run_helpers import wait_for

from pipelines.kafka_source import open_source
from sinks.layout import DataLayout
from streaming.driver import RunConfig, _kafka_positions, _new_plan
from streaming.journal import BatchJournal
from streaming.metrics import RunMetrics
from streaming.retry import Backoff, GaveUp
from streaming.schedule import budgets_read, fair_shares
from streaming.workers import Heartbeat, is_alive, prune_dead, running_workers


def test_a_killed_worker_not_yet_reaped_is_dead(tmp_path):
    child = spawn(
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


def test_a_small_budget_reads_one_partition_a_batch_each_in_turn():
    level = dict.fromkeys(range(4), 51_530)  # the bench's backlog, in batches of 25,765
    read = [fair_shares(level, 25_765, least=16_384, turn=t) for t in range(5)]
    assert [[p for p, n in shares.items() if n] for shares in read] == [[0], [1], [2], [3], [0]]
    assert read[1] == {0: 0, 1: 25_765, 2: 0, 3: 0}


def test_a_hot_partition_does_not_starve_the_quiet_ones():
    backlogs = {0: 1_000_000, 1: 50, 2: 30_000, 3: 20}
    read = [fair_shares(backlogs, 20_000, least=16_384, turn=t) for t in range(4)]
    assert read == [
        {0: 20_000, 1: 0, 2: 0, 3: 0},
        {0: 0, 1: 50, 2: 19_950, 3: 0},  # what partition 1 leaves goes to the next in turn
        {0: 0, 1: 0, 2: 20_000, 3: 0},
        {0: 19_980, 1: 0, 2: 0, 3: 20},
    ]


def test_the_turn_goes_round_every_partition_so_none_waits_longer_than_a_round():
    backlogs = {0: 0, 1: 90_000, 2: 0, 3: 90_000}
    read = [fair_shares(backlogs, 20_000, least=16_384, turn=t) for t in range(4)]
    assert [[p for p, n in shares.items() if n] for shares in read] == [[1], [1], [3], [3]]


def test_the_turn_is_how_many_budgets_the_partitions_have_been_read():
    """From the journal's positions: a restart goes on with the round where it was."""
    assert budgets_read({0: 0, 1: 0, 2: 0, 3: 0}, 25_765) == 0
    assert budgets_read({0: 25_765, 1: 25_765, 2: 0, 3: 0}, 25_765) == 2
    assert budgets_read({0: 10, 1: 7}, 0) == 17  # no budget: one a record, not a division by 0


def test_a_budget_worth_several_partitions_is_shared_between_those_in_turn():
    backlogs = {0: 60_000, 1: 60_000, 2: 10, 3: 50_000}
    assert fair_shares(backlogs, 40_000, least=16_384) == {0: 20_000, 1: 20_000, 2: 0, 3: 0}


def test_a_backlog_within_the_budget_is_read_whole():
    assert fair_shares({0: 3, 1: 4}, 100, least=16_384) == {0: 3, 1: 4}


def test_without_a_least_share_every_partition_shares_the_budget():
    assert fair_shares(dict.fromkeys(range(4), 1000), 100) == dict.fromkeys(range(4), 25)
    assert fair_shares({0: 1000, 1: 5, 2: 1000, 3: 0}, 100) == {0: 48, 1: 5, 2: 47, 3: 0}


def test_records_that_do_not_divide_go_to_the_partitions_in_turn():
    turned = [fair_shares(dict.fromkeys(range(4), 9), 2, turn=t) for t in range(4)]
    assert [sorted(p for p, n in s.items() if n) for s in turned] == [[0, 1], [1, 2], [2, 3],
                                                                       [0, 3]]  # fmt: skip


@given(
    st.dictionaries(st.integers(0, 7), st.integers(0, 100_000), max_size=8),
    st.integers(0, 300_000),
    st.integers(0, 40_000),
    st.integers(0, 20),
)
def test_shares_spend_the_budget_within_each_backlog(backlogs, budget, least, turn):
    shares = fair_shares(backlogs, budget, least, turn)
    assert set(shares) == set(backlogs)
    assert all(0 <= shares[p] <= backlogs[p] for p in backlogs)
    assert sum(shares.values()) == min(budget, sum(backlogs.values()))


def test_under_a_backlog_consecutive_batches_read_the_partitions_in_turn(
    broker, topic, data_dir, publish
):
    publish(broker, topic, nodes=12, duration_s=20)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir, max_batch_records=40)
    positions = _kafka_positions(config, open_source(broker.bootstrap))
    read = []
    with BatchJournal(DataLayout(data_dir).journal) as journal:
        for _ in range(4):  # each plan journaled: the next reads on after it
            plan = _new_plan(config, journal, None, positions, "w")
            (one,) = plan["ranges"]  # 40 offsets: one partition's worth
            assert one["end"] - one["start"] == 40
            read.append(one["partition"])
            journal.record_plan(plan["batch_id"], topic, plan, owner="w")
    assert sorted(read) == [0, 1, 2, 3]


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
