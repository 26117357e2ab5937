"""The processes ``rda infra`` starts: the real process recorded, the whole group stopped, and a
broker whose records and offsets survive a ``kill -9``."""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
import warnings
from pathlib import Path

import pytest
from run_helpers import assert_exactly_once, run_args, start_run, wait_for

from infra import processes
from infra.broker import start_broker, stop_broker
from infra.object_store import start_object_store, stop_object_store
from pipelines.kafka_source import open_source

STUBBORN = "trap '' TERM; sleep 120 & echo started; wait"  # ignores SIGTERM, and so does sleep


@pytest.mark.anvil
def test_anvil_is_recorded_as_the_node_itself_not_npm_s_launcher(anvil):
    executable = Path(f"/proc/{anvil.pid}/exe").resolve()
    assert executable.name == "anvil"
    assert "anvil-linux" in str(executable) or sys.platform != "linux"
    assert processes.group_members(anvil.pid) == [anvil.pid]  # no launcher, no stray child


def start_stubborn(folder: Path) -> int:
    """A shell (and its sleep) that ignore SIGTERM, started as a service: its pid."""
    return processes.start_service(
        "stubborn", ["sh", "-c", STUBBORN], folder,
        ready=lambda: "started" in (folder / "stubborn.log").read_text(),
        timeout=10, what="the stubborn shell",
    )  # fmt: skip


def test_stop_signals_the_whole_group_and_kills_what_ignores_sigterm(tmp_path):
    pid = start_stubborn(tmp_path)
    members = processes.group_members(pid)
    assert len(members) == 2  # the shell and its sleep
    assert processes.stop(tmp_path / "stubborn.pid", grace=0.5) is True
    assert processes.group_members(pid) == []
    assert not (tmp_path / "stubborn.pid").exists()


def test_a_launcher_killed_alone_leaves_nothing_behind_after_stop(tmp_path):
    pid = start_stubborn(tmp_path)
    os.kill(pid, signal.SIGKILL)  # the leader dies; its child keeps the group alive
    wait_for(lambda: not processes.alive(pid), 10, "the leader to die")
    assert processes.group_alive(pid)
    assert processes.stop(tmp_path / "stubborn.pid", grace=0.5) is True
    assert processes.group_members(pid) == []


def test_a_service_started_and_stopped_leaves_no_process_object_to_warn_about(tmp_path):
    """Its ``Popen`` is kept while it runs and told it ended when stopped: collected, it does not
    warn "subprocess … is still running" (what `rda bench` printed per broker)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = start_stubborn(tmp_path)
        processes.stop(tmp_path / "stubborn.pid", grace=0.5)
        gc.collect()
    assert [str(w.message) for w in caught if str(pid) in str(w.message)] == []
    assert pid not in processes._started


def logged(log: Path, pattern: str) -> bool:
    """Whether the log has a line matching ``pattern`` (batch ids are long: ``batch \\d+``)."""
    return log.exists() and re.search(pattern, log.read_text()) is not None


@pytest.mark.anvil
@pytest.mark.slow
def test_a_broker_killed_mid_stream_restarts_with_its_records_and_offsets(
    tmp_path, publish, anvil, registry
):
    infra = tmp_path / "infra"
    store = start_object_store(infra, infra / "broker-data")
    try:
        broker = start_broker(infra, store=store)
        kill_restart_and_catch_up(tmp_path, broker, store, publish, anvil, registry)
    finally:
        stop_broker(infra)
        stop_object_store(infra)


def kill_restart_and_catch_up(tmp_path, broker, store, publish, anvil, registry) -> None:
    """Under a running ``rda run``: kill -9 the broker, restart it, produce more, catch up."""
    topic, data, log = "persisted", tmp_path / "data", tmp_path / "run.log"
    args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
    first = publish(broker, topic, nodes=4, duration_s=10).messages
    flags = ("--kafka-timeout", "2", "--backoff-max", "0.5", "--max-batch-records", "100000")
    process = start_run(*args, *flags, state=tmp_path / "state", log=log)
    try:
        wait_for(lambda: logged(log, r"batch \d+ on"), 180, "a first batch")
        os.kill(broker.pid, signal.SIGKILL)
        wait_for(lambda: logged(log, r"failed \(attempt 1\)"), 60, "the run to miss the broker")
        # The killed broker waited for and let go of (its pid file, its Popen): left unwaited,
        # its Popen warned "subprocess … is still running" when collected at the worker's exit.
        processes.reap(broker.pid, 10)
        stop_broker(tmp_path / "infra")
        broker = start_broker(tmp_path / "infra", port=broker.port, store=store)
        second = publish(broker, topic, nodes=4, duration_s=10, seed=2, start_ms=1_764_000_100_000)
        source = open_source(broker.bootstrap)
        ends = source.high_watermarks(topic)
        assert sum(ends.values()) == first + second.messages  # nothing lost by the broker
        group = f"group-{topic}"
        wait_for(lambda: source.committed(group, topic) == ends, 240, "catching up", 0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert_exactly_once(broker.bootstrap, topic, data, registry, first + second.messages)
