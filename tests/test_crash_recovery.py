"""``kill -9`` of a real ``rda run`` after every journal step and at random moments, then restart.

The chain is anvil, so anchors outlive the killed process. After the restart (the last one
flushes the event-time windows: the end of input), every record the fleet produced is
published, quarantined or suppressed exactly once (per partition and offset, per node) — the
subscriber sessions held in the state store across the kills included — and the chain holds
exactly one anchor per checkpoint in the catalog.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from run_helpers import assert_exactly_once, checkpoint_keys, run_args, start_run, wait_for

from simulator.fleet import generate
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.faults import STEPS
from streaming.quality_queue import attestations, failed_jobs, pending
from streaming.store import journaling, workspace

START_MS = 1_764_000_000_000

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
RANDOM_KILLS = 4  # each journal step also has a deterministic kill of its own above
LARGE_BATCHES = ("--max-batch-records", "2000", "--max-chunk-records", "500")


def _written_since(log: Path, since: int) -> bytes:
    """What the run writing ``log`` from byte ``since`` wrote there so far."""
    return log.read_bytes()[since:]


def _size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def _adopted(log: Path, since: int) -> bool:
    """Whether the run writing ``log`` from byte ``since`` took over a killed run's batch."""
    return b"INFO adopting batch " in _written_since(log, since)


def _working(log: Path, since: int, finished: int) -> bool:
    """Whether the run writing ``log`` from byte ``since`` started a batch after ``finished``."""
    lines = _written_since(log, since).splitlines()
    done = [i for i, line in enumerate(lines) if b": read " in line]  # a batch's summary
    return len(done) >= finished and len(lines) > (done[finished - 1] + 1 if finished else 0)


def finish(args: list[str], tmp_path: Path, log: Path) -> dict:
    # The end of input: every event-time window closes, held sessions are released. The rest
    # of the backlog in large batches (a batch the killed run planned is redone as planned):
    # in the small batches of the killed runs it took two thirds of the test's time.
    process = start_run(
        *args, "--once", "--flush-windows", "--json", *LARGE_BATCHES,
        state=tmp_path / "state", log=log,
    )  # fmt: skip
    stdout, _ = process.communicate(timeout=240)
    assert process.returncode == 0, log.read_text()[-3000:]
    return json.loads(stdout)


def test_kill_9_right_after_each_journal_step_in_turn_then_restarts_lose_and_repeat_nothing(
    broker, topic, tmp_path, publish, anvil, registry
):
    produced = publish(broker, topic, nodes=6, duration_s=60, bad_fraction=0.05).messages
    data, log = tmp_path / "data", tmp_path / "run.log"
    args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
    unfinished: list = []
    for step in STEPS:
        # Each run first finishes what the run killed before it left, if anything, then one
        # batch, and is killed in its second batch (logs and checkpoints have history),
        # right after `step` is journaled.
        written = _size(log)
        crashed = start_run(*args, "--once", state=tmp_path / "state", log=log,
                            env={"RDA_CRASH_AT": f"{step}:2"})  # fmt: skip
        crashed.communicate(timeout=240)
        assert crashed.returncode == -signal.SIGKILL, (step, log.read_text()[-3000:])
        assert _adopted(log, written) is bool(unfinished), step
        with journaling(workspace(data)) as journal:
            unfinished = journal.unfinished_batches(topic)
        # After `done` what is left is the next batch, planned (and landed) ahead under the
        # backlog while the killed one was sequenced, if any.
        assert unfinished or step == "done", step
    report = finish(args, tmp_path, log)
    assert report["batches"][0]["resumed"] is bool(unfinished)
    assert_exactly_once(broker.bootstrap, topic, tmp_path / "data", registry, produced)


def test_random_kill_9s_mid_work_then_restart_lose_and_repeat_nothing(
    broker, topic, tmp_path, anvil, registry
):
    # Sessions too: held in the state store across the kills, released by the final flush.
    messages = generate(8, 30, 1, START_MS, 1, 0.05, sessions=True, quality_fraction=0.02)
    produced = produce(broker.bootstrap, topic, messages).messages
    data, log = tmp_path / "data", tmp_path / "run.log"
    args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
    args += ["--quality", "worker"]  # GE's queue and reports killed at any moment too
    rng = random.Random(7)
    for _ in range(RANDOM_KILLS):
        written = _size(log)
        process = start_run(*args, state=tmp_path / "state", log=log)
        # Killed mid-work, in its first, second or third batch (timed from its start, half the
        # kills fell in its imports and the rest in its first batch, which takes the longest).
        finished = rng.randint(0, 2)
        wait_for(
            lambda since=written, finished=finished: _working(log, since, finished),
            90, f"the run to finish {finished} batches",
        )  # fmt: skip
        time.sleep(rng.uniform(0.0, 1.0))
        process.kill()
        process.wait(timeout=30)
    finish(args, tmp_path, log)
    assert_exactly_once(broker.bootstrap, topic, data, registry, produced)
    layout = DataLayout(data)  # every checkpoint's GE report attested, once
    assert pending(layout) == [] and failed_jobs(layout) == []
    manifests = layout.published.glob("*/checkpoints/*.manifest.json")
    assert checkpoint_keys(attestations(layout)) == checkpoint_keys(manifests)
