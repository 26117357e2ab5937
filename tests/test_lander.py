"""The lander: one forked child that runs step after step, isolated as a child per step is."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from child_processes import spawn

from infra.processes import alive
from streaming.isolation import WorkerCrashed
from streaming.lander import NICER_THAN_THE_RUN, Lander

pytestmark = pytest.mark.slow  # landing children, forked and killed


def _pid_of_child(_args: object) -> int:
    return os.getpid()


def _kill_self(signal_number: int) -> None:
    # The child inherits pytest's faulthandler, whose dump of a deliberate SIGSEGV reads in the
    # log like a crash of the suite.
    faulthandler.disable()
    os.kill(os.getpid(), signal_number)


def _raise(message: str) -> None:
    try:
        raise OSError(28, "No space left on device")
    except OSError as error:
        raise RuntimeError(message) from error


def _grow(megabytes: int) -> int:
    global _BALLAST
    _BALLAST = bytearray(megabytes << 20)  # kept: the child's resident set stays grown
    return os.getpid()


_BALLAST = b""


def _after(path: str) -> str:
    """Returns once ``path`` exists (bounded: 60 s): a step that needs the caller to go on."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "went on" if os.path.exists(path) else "waited in vain"


def test_every_step_runs_in_the_same_child_not_in_this_process():
    lander = Lander(_pid_of_child)
    try:
        first, second = lander.run(None, "one"), lander.run(None, "two")
        assert first == second == lander.pid
        assert first != os.getpid()
    finally:
        lander.close()
    assert lander.pid is None


def _niceness_or_die(die: bool) -> int:
    if die:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpriority(os.PRIO_PROCESS, 0)


def test_a_child_and_its_replacement_run_nicer_than_the_run_by_the_same_step():
    """The run's sequencing comes first on a busy machine: the children yield to it, and a
    replacement child (forked by the spawner, which keeps the run's priority) no more."""
    lander = Lander(_niceness_or_die)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        assert lander.run(False, "first child") == min(ours + NICER_THAN_THE_RUN, 19)
        with pytest.raises(WorkerCrashed):
            lander.run(True, "killed")
        assert lander.run(False, "its replacement") == min(ours + NICER_THAN_THE_RUN, 19)
    finally:
        lander.close()
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours


def test_a_child_killed_by_a_signal_is_a_worker_crash_and_the_next_step_gets_a_new_one():
    lander = Lander(_kill_self)
    try:
        with pytest.raises(WorkerCrashed, match=r"landing batch 7.*killed by SIGSEGV"):
            lander.run(signal.SIGSEGV, "landing batch 7")
        assert lander.pid is None
        assert lander.run(0, "the next batch") is None  # signal 0 only checks: a new child
        assert lander.pid is not None
    finally:
        lander.close()


def test_an_exception_comes_back_with_its_cause_and_the_child_stays():
    lander = Lander(_raise)
    try:
        with pytest.raises(RuntimeError, match="the disk is full") as raised:
            lander.run("the disk is full", "landing")
        assert isinstance(raised.value.__cause__, OSError)
        assert raised.value.__cause__.errno == 28
        assert lander.pid is not None  # a failure, not a crash: the child goes on
    finally:
        lander.close()


def _stuck(seconds: float) -> str:
    """A step whose main thread waits without CPU time, as one blocked on a lock for good."""
    threading.Event().wait(seconds)
    return "woke up"


def _busy(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "done"


def test_a_stuck_child_dumps_its_stacks_and_is_killed_as_a_crash(capfd):
    lander = Lander(_stuck)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerCrashed, match=r"landing batch 9 \(stuck: its main thread"):
            lander.run(60, "landing batch 9", stall_s=1.0)
        assert time.monotonic() - started < 30
        assert lander.pid is None
        assert "in _stuck" in capfd.readouterr().err  # where it was stuck, for whoever debugs it
        assert lander.run(0, "the next batch") == "woke up"  # a new child
    finally:
        lander.close()


def test_a_child_busy_for_longer_than_the_stall_bound_is_waited_for():
    lander = Lander(_busy)
    try:
        assert lander.run(2.0, "a long step", stall_s=0.5) == "done"
    finally:
        lander.close()


def test_a_child_grown_past_its_memory_bound_is_replaced_after_its_step():
    lander = Lander(_grow, max_rss_mb=1.0)  # every child is past 1 MB
    try:
        first = lander.run(64, "big step")
        assert lander.pid is None  # closed after answering
        assert lander.run(1, "next step") != first
    finally:
        lander.close()


def test_a_submitted_step_runs_while_the_caller_goes_on_and_is_collected_later(tmp_path):
    lander = Lander(_after)
    go_on = tmp_path / "go-on"
    try:
        lander.submit("step", str(go_on), "a step that waits for its caller")
        assert lander.submitted("step")
        go_on.touch()  # only reachable if submit returned before the step ended
        assert lander.collect("step") == "went on"
        assert not lander.submitted("step")
    finally:
        lander.close()


def test_a_step_run_while_another_is_in_flight_keeps_the_first_outcome_for_its_collect():
    lander = Lander(_kill_self)
    try:
        lander.submit("first", signal.SIGKILL, "landing batch 1")
        assert lander.run(0, "landing batch 2") is None  # in a new child: the first one died
        with pytest.raises(WorkerCrashed, match=r"landing batch 1.*killed by SIGKILL"):
            lander.collect("first")
    finally:
        lander.close()


def test_closing_kills_a_step_in_flight_whose_answer_nobody_waits_for(tmp_path):
    lander = Lander(_after)
    lander.submit("step", str(tmp_path / "never"), "a step that would wait 60 s")
    started = time.monotonic()
    lander.close()
    assert time.monotonic() - started < 10
    assert lander.pid is None and not lander.submitted("step")


def test_a_lander_closed_ends_its_child_though_another_lander_was_forked_after_it():
    first, second = Lander(_pid_of_child), Lander(_pid_of_child)
    try:
        first.start()
        second.start()  # its child inherits nothing of the first lander's pipes
        closing = threading.Thread(target=first.close, daemon=True)
        closing.start()
        closing.join(timeout=10)
        assert not closing.is_alive() and first.pid is None
    finally:
        second.close()


class EndsAsked:
    """The real broker's source, counting its high-watermark reads; the ``lost``-th answer is
    lost (``KafkaUnavailable``)."""

    def __init__(self, source: object, lost: int | None = None) -> None:
        self.source, self.lost, self.asked = source, lost, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.source, name)

    def high_watermarks(self, topic: str) -> dict:
        from pipelines.kafka_source import KafkaUnavailable

        self.asked += 1
        if self.asked == self.lost:
            raise KafkaUnavailable("the broker did not answer in time")
        return self.source.high_watermarks(topic)


def test_under_a_backlog_the_next_batch_is_planned_and_landed_while_this_one_is_sequenced(
    broker, topic, publish, tmp_path
):
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, Worker, run_batch
    from streaming.poison import landing_ahead, landing_process
    from streaming.store import journaling, workspace

    publish(broker, topic, nodes=4, duration_s=10)
    config = RunConfig(broker.bootstrap, topic, "ahead", tmp_path / "data", max_batch_records=40)
    chain, worker = open_chain("embedded", None, None), Worker(lander=landing_process())
    try:
        first = run_batch(config, open_source(broker.bootstrap), chain.anchor, worker=worker)
        with journaling(workspace(config.data_dir)) as journal:
            (ahead,) = journal.unfinished_batches(topic)
        assert ahead["state"] == "planned" and ahead["batch_id"] > first.batch_id
        read_to = {r["partition"]: r["end"] for r in first.ranges}  # elsewhere: nothing read
        assert all(r["start"] == read_to.get(r["partition"], 0) for r in ahead["plan"]["ranges"])
        assert landing_ahead(config, ahead["plan"], worker.lander)
        second = run_batch(config, open_source(broker.bootstrap), chain.anchor, worker=worker)
        assert second.batch_id == ahead["batch_id"] and not second.resumed
        assert not landing_ahead(config, ahead["plan"], worker.lander)  # collected
    finally:
        worker.lander.close()


def test_a_batch_landed_ahead_is_taken_without_asking_where_the_partitions_end(
    broker, topic, publish, tmp_path
):
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, Worker, run_batch
    from streaming.poison import landing_process

    publish(broker, topic, nodes=4, duration_s=30)  # three full batches at least
    config = RunConfig(broker.bootstrap, topic, "taken", tmp_path / "data", max_batch_records=40)
    chain, worker = open_chain("embedded", None, None), Worker(lander=landing_process())
    try:
        first = run_batch(config, open_source(broker.bootstrap), chain.anchor, worker=worker)
        source = EndsAsked(open_source(broker.bootstrap))
        second = run_batch(config, source, chain.anchor, worker=worker)
        assert second.batch_id > first.batch_id and second.read == 40
        assert source.asked == 1  # for the batch after it, planned ahead; none for its own
    finally:
        worker.lander.close()


def test_a_batch_whose_successor_cannot_be_planned_ahead_still_finishes(
    broker, topic, publish, tmp_path
):
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, Worker, run_batch
    from streaming.poison import landing_process
    from streaming.store import journaling, workspace

    publish(broker, topic, nodes=4, duration_s=10)
    config = RunConfig(broker.bootstrap, topic, "no-ahead", tmp_path / "data", max_batch_records=40)
    chain, worker = open_chain("embedded", None, None), Worker(lander=landing_process())
    try:
        # the look-ahead's answer lost: after this batch's plan, before its landing
        source = EndsAsked(open_source(broker.bootstrap), lost=2)
        summary = run_batch(config, source, chain.anchor, worker=worker)
        assert summary is not None and summary.read == 40 and summary.checkpoints
        with journaling(workspace(config.data_dir)) as journal:
            assert journal.unfinished_batches(topic) == []  # done, and nothing planned ahead
    finally:
        worker.lander.close()


def test_batches_landed_by_one_kept_child_publish_what_a_child_per_batch_does(
    broker, topic, publish, tmp_path
):
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, Worker, run_batch
    from streaming.poison import landing_process

    publish(broker, topic, nodes=6, duration_s=20, bad_fraction=0.1)
    source = open_source(broker.bootstrap)

    def drain(name: str, worker: Worker) -> tuple[dict, int]:
        config = RunConfig(broker.bootstrap, topic, name, tmp_path / name, max_batch_records=40)
        chain, roots, batches = open_chain("embedded", None, None), {}, 0
        while (summary := run_batch(config, source, chain.anchor, worker=worker)) is not None:
            batches += 1
            roots.update({c["dataset"]: (c["tree_size"], c["root"]) for c in summary.checkpoints})
        return roots, batches

    lander = landing_process()
    try:
        kept, batches = drain("kept", Worker(lander=lander))
        assert lander.lead.pid is not None  # its first child, still there for the next batch
    finally:
        lander.close()
    per_batch, _ = drain("forked", Worker())
    assert batches > 3
    assert kept == per_batch


_HELD_BY_A_THREAD = threading.Lock()


def _lock_state(_args: object) -> str:
    """In the child: whether the lock is free there (bounded: 5 s)."""
    if not _HELD_BY_A_THREAD.acquire(timeout=5):
        return "held"
    _HELD_BY_A_THREAD.release()
    return "free"


def test_a_replacement_child_is_a_copy_of_the_run_as_it_started_not_as_it_is_now():
    # A lock one of the run's threads holds when a crashed child is replaced: forked from the
    # run then, the new child held it for good; forked by the spawner, it never had it.
    lander = Lander(_lock_state)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _HELD_BY_A_THREAD:
            holding.set()
            release.wait(60)

    try:
        lander.start()  # as `rda run` does: the spawner and the first child, before any thread
        first = lander.pid
        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        holding.wait(10)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(WorkerCrashed, match="killed by SIGKILL"):
            lander.run(None, "a step the killed child cannot take")
        assert lander.run(None, "a step in the replacement") == "free"
        assert lander.pid not in (None, first)
    finally:
        release.set()
        lander.close()


HOLD_A_LANDER = """
import os, sys, time
from streaming.lander import NICER_THAN_THE_RUN, Lander
lander = Lander(os.getpid)
lander.start()
print(lander._spawner.pid, lander.pid, flush=True)
time.sleep(60)
"""


def test_the_spawner_and_its_child_die_with_a_killed_run():
    run = spawn([sys.executable, "-c", HOLD_A_LANDER], stdout=subprocess.PIPE, text=True)
    try:
        spawner, child = (int(pid) for pid in run.stdout.readline().split())
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in (spawner, child)):
            time.sleep(0.05)
        assert not alive(spawner) and not alive(child)
    finally:
        run.kill()
        run.wait(10)
