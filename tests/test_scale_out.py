"""Several ``rda run --join-group`` workers on one data directory and one consumer group.

They split a four-partition topic through the group protocol, land in parallel and sequence
their batches into the same dataset logs one at a time. When one is killed, the group moves its
partitions to the others, its unfinished batch is adopted and redone from the journal, and the
data ends up holding exactly the produced records: none lost, none twice, one anchor per
checkpoint.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from run_helpers import assert_exactly_once, run_args, start_run, wait_for

from pipelines.kafka_source import open_source
from sinks.storage import Store
from streaming.journal import BatchJournal

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(600)]
# A killed worker's partitions move after 4 s, not 10: the tests' runs wait for it.
SHORT_SESSIONS = ("--group-session-timeout", "4")


@pytest.fixture
def fleet_and_workers(broker, topic, tmp_path, publish, anvil, registry):
    """``start(count, env)``: publish a fleet's records, start ``count`` workers in one group;
    returns (records produced, data directory, worker processes)."""

    def start(count: int, env: dict | None = None) -> tuple[int, Path, list]:
        produced = publish(broker, topic, nodes=8, duration_s=20).messages
        data = tmp_path / "data"
        args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
        return produced, data, start_workers(count, args, tmp_path, env)

    return start


def start_workers(count: int, args: list[str], tmp_path: Path, env=None) -> list:
    flags = [*args, "--join-group", "--kafka-timeout", "10", *SHORT_SESSIONS]
    logs = [tmp_path / f"worker-{i}.log" for i in range(count)]
    return [
        start_run(*flags, state=tmp_path / "state", log=log, env=(env or {}).get(i))
        for i, log in enumerate(logs)
    ]


def journal(data: Path | str) -> list[dict]:
    """Every batch of the data directory's journal, oldest first."""
    return BatchJournal(Store.open(data)).entries()


def everything_done(bootstrap: str, topic: str, data: Path | str) -> bool:
    """Every offset of the topic is in a batch, and every batch is done."""
    entries = journal(data)
    if not entries:
        return False
    ends = open_source(bootstrap).high_watermarks(topic)
    covered = {p: 0 for p in ends}
    for entry in entries:
        for r in entry["plan"]["ranges"]:
            covered[r["partition"]] += r["end"] - r["start"]
    return covered == ends and all(e["state"] == "done" for e in entries)


def stop(workers: list[subprocess.Popen], tmp_path: Path) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for i, worker in enumerate(workers):
        worker.communicate(timeout=120)
        log = (tmp_path / f"worker-{i}.log").read_text()
        assert worker.returncode in (0, -signal.SIGKILL), log[-3000:]


def owner_pid(entry: dict) -> int:
    return int(entry["owner"].split("/")[1])


def assignments(log: Path) -> list[str]:
    return re.findall(r"assigned (.+)", log.read_text())


def test_two_workers_split_the_partitions_and_publish_every_record_once(
    broker, topic, tmp_path, registry, fleet_and_workers
):
    produced, data, workers = fleet_and_workers(2)
    try:
        wait_for(lambda: everything_done(broker.bootstrap, topic, data), 240, "all batches")
    finally:
        stop(workers, tmp_path)

    assert_exactly_once(broker.bootstrap, topic, data, registry, produced)
    entries = journal(data)
    assert {owner_pid(e) for e in entries} == {w.pid for w in workers}  # both did batches
    for i in range(2):  # at some point each worker owned half of the topic
        halves = [a for a in assignments(tmp_path / f"worker-{i}.log") if a.count(topic) == 2]
        assert halves, assignments(tmp_path / f"worker-{i}.log")
    status = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--json", "--data-dir", str(data),
         "--bootstrap", broker.bootstrap, "--topic", topic, "--group", f"group-{topic}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    report = json.loads(status.stdout)
    assert report["lag"]["topics"][topic]["total"] == 0  # offsets committed through the group
    assert {int(w["worker"].split("/")[1]) for w in report["workers"]} == {w.pid for w in workers}
    assert not any(w["alive"] or w["unfinished_batches"] for w in report["workers"])


def test_a_worker_killed_mid_batch_is_replaced_and_the_data_is_exactly_the_produced_records(
    broker, topic, tmp_path, publish, registry, fleet_and_workers
):
    produced, data, workers = fleet_and_workers(3)
    try:
        busy: dict = {}  # a batch being landed -> its worker

        def a_worker_is_mid_batch() -> bool:
            pids = {w.pid: w for w in workers}
            for e in journal(data):
                if e["state"] == "planned" and owner_pid(e) in pids:
                    busy[e["batch_id"]] = pids[owner_pid(e)]
                    return True
            return False

        wait_for(a_worker_is_mid_batch, 180, "a worker landing a batch", interval=0.02)
        [(batch_id, victim)] = busy.items()
        victim.kill()  # kill -9 while its batch is planned and being landed
        victim.wait(timeout=30)
        more = publish(broker, topic, nodes=4, duration_s=10, seed=2, start_ms=1_764_100_000_000)
        wait_for(lambda: everything_done(broker.bootstrap, topic, data), 300, "all batches")
    finally:
        stop(workers, tmp_path)

    assert_exactly_once(broker.bootstrap, topic, data, registry, produced + more.messages)
    [adopted] = [e for e in journal(data) if e["batch_id"] == batch_id]
    assert adopted["state"] == "done"
    assert owner_pid(adopted) in {w.pid for w in workers} - {victim.pid}  # redone by a survivor


def test_a_worker_killed_while_sequencing_leaves_its_batch_to_be_finished_by_another(
    broker, topic, tmp_path, registry, fleet_and_workers
):
    # Worker 0 dies holding the writer lock, after fixing its second batch's place in the logs.
    produced, data, workers = fleet_and_workers(2, env={0: {"RDA_CRASH_AT": "landed:2"}})
    try:
        wait_for(lambda: workers[0].poll() is not None, 180, "worker 0 to crash")
        assert workers[0].returncode == -signal.SIGKILL
        wait_for(lambda: everything_done(broker.bootstrap, topic, data), 300, "all batches")
    finally:
        stop(workers, tmp_path)

    assert_exactly_once(broker.bootstrap, topic, data, registry, produced)
    log = (tmp_path / "worker-1.log").read_text()
    assert "interrupted while it was being sequenced" in log or "which is gone" in log
