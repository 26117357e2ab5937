"""What several workers on one data directory rely on: the writer lock, liveness, the journal's
planned ends, and consumer-group membership on the real broker."""

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
from run_helpers import wait_for

from pipelines.kafka_group import join_group
from pipelines.kafka_source import CLIENTS
from simulator.producer import ensure_topic
from sinks.layout import DataLayout
from sinks.writer_lock import WriterBusy, writer_lock
from streaming.journal import BatchJournal
from streaming.workers import Heartbeat, is_alive, this_worker

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def hold_lock_in_another_process(layout: DataLayout) -> subprocess.Popen:
    layout.root.mkdir(parents=True, exist_ok=True)
    holder = spawn(
        [sys.executable, "-c", HOLD_LOCK, str(layout.writer_lock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_the_writer_lock_keeps_a_second_process_out(tmp_path):
    layout = DataLayout(tmp_path / "data")
    holder = hold_lock_in_another_process(layout)
    try:
        with pytest.raises(WriterBusy, match=r"writer\.lock"), writer_lock(layout, wait_s=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_the_writer_lock_of_a_killed_process_is_free_at_once(tmp_path):
    layout = DataLayout(tmp_path / "data")
    holder = hold_lock_in_another_process(layout)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with writer_lock(layout, wait_s=1):  # the kernel released it with the process
        pass


def test_this_worker_is_alive_and_a_finished_process_is_not(tmp_path):
    assert is_alive(this_worker(), tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", "from streaming.workers import this_worker; print(this_worker())"],
        stdout=subprocess.PIPE,
        text=True,
    )
    gone = child.communicate()[0].strip()
    assert gone.split("/")[1] == str(child.pid)
    assert not is_alive(gone, tmp_path)


def test_a_recycled_pid_is_not_mistaken_for_the_worker_that_had_it(tmp_path):
    host, pid, ticks = this_worker().split("/")
    assert not is_alive(f"{host}/{pid}/{int(ticks) + 1}", tmp_path)


def test_an_unowned_batch_has_no_live_worker(tmp_path):
    assert not is_alive(None, tmp_path)


def test_a_worker_elsewhere_is_alive_while_its_heartbeat_is_fresh(tmp_path):
    remote = "another-host.example/4242/123"
    assert socket.gethostname() != "another-host.example"
    assert not is_alive(remote, tmp_path)  # never seen
    with Heartbeat(tmp_path, remote, lease_s=60) as beat:
        assert is_alive(remote, tmp_path, lease_s=60)
        stale = time.time() - 61
        os.utime(beat.path, (stale, stale))
        assert not is_alive(remote, tmp_path, lease_s=60)
    assert not beat.path.exists()  # a clean stop removes it


def test_the_journal_knows_how_far_each_partition_is_planned(tmp_path):
    layout = DataLayout(tmp_path / "data")
    with BatchJournal(layout.journal) as journal:
        for batch_id, ranges in ((1, [(0, 0, 40)]), (2, [(1, 0, 25), (0, 40, 55)])):
            plan = {"ranges": [{"partition": p, "start": s, "end": e} for p, s, e in ranges]}
            journal.record_plan(batch_id, "t", plan, owner="w")
        journal.record_plan(3, "other", {"ranges": [{"partition": 0, "start": 0, "end": 9}]})
        assert journal.journal_ends("t") == {0: 55, 1: 25}
        assert journal.batch(2)["owner"] == "w"
        assert journal.batch(3)["owner"] is None


def test_two_workers_journals_are_one_journal_with_ids_that_never_collide(tmp_path):
    layout = DataLayout(tmp_path / "data")
    first, second = BatchJournal(layout.journal), BatchJournal(layout.journal)
    ids = {first.next_batch_id("host-a/1/1") for _ in range(50)}
    ids |= {second.next_batch_id("host-b/2/2") for _ in range(50)}
    assert len(ids) == 100
    a, b = sorted(ids)[:2]
    first.record_plan(a, "t", {"ranges": [{"partition": 2, "start": 10, "end": 30}]}, "host-a")
    second.record_plan(b, "t", {"ranges": [{"partition": 2, "start": 30, "end": 45}]}, "host-b")
    assert first.journal_ends("t") == second.journal_ends("t") == {2: 45}
    assert [e["owner"] for e in first.unfinished_batches("t")] == ["host-a", "host-b"]


class PolledMember:
    """A group member polled by its own thread, as each ``rda run`` process polls its own."""

    def __init__(self, bootstrap: str, group: str, topic: str, client: str) -> None:
        self.member = join_group(bootstrap, group, [topic], client=client, session_timeout_ms=6000)
        self.topic = topic
        self.owned: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.member.poll(100)
                self.owned = self.member.partitions(self.topic)

    def commit(self, offsets: dict[int, int]) -> None:
        with self._lock:
            self.member.commit(self.topic, offsets)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.member.close()


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
def test_two_group_members_split_a_topic_and_one_gets_all_when_the_other_leaves(
    broker, topic, client
):
    ensure_topic(broker.bootstrap, topic, 4)
    group = f"members-{topic}"
    first = PolledMember(broker.bootstrap, group, topic, client)
    second = None
    try:
        wait_for(lambda: first.owned == {0, 1, 2, 3}, 60, "the first member's assignment")
        second = PolledMember(broker.bootstrap, group, topic, client)

        def split() -> bool:
            mine, theirs = first.owned, second.owned
            return len(mine) == len(theirs) == 2 and mine | theirs == {0, 1, 2, 3}

        wait_for(split, 90, "the group to split the partitions")
        first.commit(dict.fromkeys(first.owned, 7))  # with its generation
        second.close()
        second = None
        wait_for(lambda: first.owned == {0, 1, 2, 3}, 90, "the partitions to move back")
    finally:
        first.close()
        if second is not None:
            second.close()


@pytest.mark.slow
def test_rda_run_refuses_to_join_a_group_on_the_embedded_chain(broker, topic, tmp_path):
    command = [
        sys.executable, "-m", "cli.main", "run", "--join-group", "--once", "--chain",
        "embedded", "--bootstrap", broker.bootstrap, "--topic", topic, "--group",
        f"embedded-{topic}", "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RDA_STATE_DIR": str(tmp_path / "state")},
    )
    assert result.returncode == 2
    assert "needs a chain the workers share" in result.stderr


def test_a_late_batch_never_moves_the_groups_committed_offset_backwards(broker, topic, tmp_path):
    from pipelines.kafka_source import open_source
    from streaming.driver import RunConfig, Worker, _commit_offsets

    ensure_topic(broker.bootstrap, topic, 4)
    source = open_source(broker.bootstrap)
    group = f"late-{topic}"
    source.commit(group, topic, {0: 50})  # another worker has already moved partition 0 on
    config = RunConfig(broker.bootstrap, topic, group, tmp_path / "data")

    assert _commit_offsets(config, source, Worker(), {0: 30, 1: 10})  # an adopted, older batch

    assert source.committed(group, topic) == {0: 50, 1: 10, 2: 0, 3: 0}


def test_a_worker_the_group_left_without_partitions_still_finishes_its_own_planned_batch(
    broker, topic, tmp_path
):
    """Nobody plans past a live worker's batch, so one that kept it planned after the group took
    its partitions away stalled them for as long as it lived (scale-out red team F2)."""
    from pipelines.kafka_source import open_source
    from simulator.fleet import generate
    from simulator.producer import produce
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, Worker, _kafka_positions, _take_or_plan, run_batch
    from streaming.store import journaling, workspace

    produced = produce(broker.bootstrap, topic, generate(2, 5, 1, 1_764_000_000_000, 3)).messages
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", tmp_path / "data")
    source, chain = open_source(broker.bootstrap), open_chain("embedded", None, None)
    space = workspace(config.data_dir, config.work_dir)
    with journaling(space) as journal:  # planned by this worker while it owned the topic
        positions = _kafka_positions(config, source)
        planned = _take_or_plan(config, journal, space, Worker(), None, positions)
    without_partitions = Worker(owned=lambda topic: set())

    summary = run_batch(config, source, chain.anchor, worker=without_partitions)

    assert summary is not None and summary.batch_id == planned["batch_id"]
    assert summary.read == produced
    with journaling(space) as journal:
        assert journal.unfinished_batches(topic) == []
    assert run_batch(config, source, chain.anchor, worker=without_partitions) is None


SLEEPER = (
    "import time; from streaming.workers import this_worker; print(this_worker(), flush=True); "
    "time.sleep(60)"
)


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def worker_process_here() -> tuple[subprocess.Popen, str]:
    child = spawn([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, text=True)
    return child, child.stdout.readline().strip()


def test_a_running_worker_here_that_stopped_beating_is_dead_once_its_lease_runs_out(tmp_path):
    """A stopped (SIGSTOP) worker's process still runs: it held its batch, and its partitions,
    for as long as it stayed stopped (scale-out red team F3)."""
    child, worker = worker_process_here()
    try:
        with Heartbeat(tmp_path, worker, lease_s=60) as beat:
            assert is_alive(worker, tmp_path, lease_s=60)
            stale = time.time() - 61
            os.utime(beat.path, (stale, stale))  # as a stopped process leaves it
            assert not is_alive(worker, tmp_path, lease_s=60)
    finally:
        child.kill()
        child.wait()


def test_a_running_worker_here_without_a_heartbeat_is_alive_while_it_runs(tmp_path):
    child, worker = worker_process_here()
    try:
        assert is_alive(worker, tmp_path)
    finally:
        child.kill()
        child.wait()
    assert not is_alive(worker, tmp_path)


def test_the_stale_heartbeat_of_a_running_worker_here_is_kept(tmp_path):
    """Pruned, it would make the stopped worker alive again (no heartbeat, process running)."""
    from streaming.workers import prune_dead

    child, worker = worker_process_here()
    try:
        with Heartbeat(tmp_path, worker, lease_s=60) as beat:
            stale = time.time() - 600
            os.utime(beat.path, (stale, stale))
            assert prune_dead(tmp_path, lease_s=60) == []
            assert beat.path.exists() and not is_alive(worker, tmp_path, lease_s=60)
    finally:
        child.kill()
        child.wait()


def test_a_stopped_worker_here_stays_dead_when_another_host_prunes_its_stale_heartbeat(
    tmp_path, monkeypatch
):
    """Pruned by another host after two silent leases, its file was gone, and a running process
    here without one counted as alive again (review of the F3 fix)."""
    from streaming.workers import prune_dead

    child, worker = worker_process_here()
    try:
        os.kill(child.pid, signal.SIGSTOP)  # delivered a moment later: wait until it is stopped
        wait_for(lambda: stopped(child.pid), 10, "the worker to stop")
        beat = Heartbeat(tmp_path, worker, lease_s=60)
        beat._write()  # the file it left when it stopped, long ago
        stale = time.time() - 600
        os.utime(beat.path, (stale, stale))
        with monkeypatch.context() as elsewhere:
            elsewhere.setenv("RDA_WORKER_HOST", "another-host.example")
            assert prune_dead(tmp_path, lease_s=60) == [worker]

        assert not is_alive(worker, tmp_path, lease_s=60)
    finally:
        child.kill()
        child.wait()
