"""A running ``rda run`` through outages: the broker paused, the chain unreachable, a SIGTERM.

Each time the run waits and retries with one log line per attempt, commits no Kafka offset ahead
of an anchor, and in the end every produced record is published or quarantined exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
from run_helpers import TcpRelay, assert_exactly_once, run_args, start_run, wait_for

from infra.broker import start_broker, stop_broker
from infra.tools import free_port
from pipelines.kafka_source import open_source

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
DATASETS = ("radio_kpi.v1", "node_heartbeat.v1", "speed_test.v2")


def logged(log, pattern: str) -> bool:
    """Whether the log has a line matching ``pattern`` (batch ids are long: ``batch \\d+``)."""
    return log.exists() and re.search(pattern, log.read_text()) is not None


def test_sigterm_stops_after_the_current_step_with_exit_0_and_a_restart_finishes(
    broker, topic, tmp_path, publish, anvil, registry
):
    produced = publish(broker, topic, nodes=8, duration_s=20).messages
    data, log = tmp_path / "data", tmp_path / "run.log"
    args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
    process = start_run(*args, "--json", state=tmp_path / "state", log=log)
    wait_for(lambda: logged(log, r"batch \d+ on"), 120, "the first batch")
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()[-3000:]
    report = json.loads(stdout)
    assert report["stopped_by"] == "SIGTERM"
    assert 0 < report["totals"]["read"] < produced  # stopped early, cleanly

    again = start_run(*args, "--once", state=tmp_path / "state", log=log)
    again.communicate(timeout=240)
    assert again.returncode == 0
    assert_exactly_once(broker.bootstrap, topic, data, registry, produced)


def test_a_second_sigterm_abandons_the_step_and_the_restart_redoes_it(
    broker, topic, tmp_path, publish, anvil, registry
):
    produced = publish(broker, topic, nodes=8, duration_s=20).messages
    data, log = tmp_path / "data", tmp_path / "run.log"
    args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
    process = start_run(*args, "--max-batch-records", "100000", state=tmp_path / "state", log=log)
    wait_for(lambda: logged(log, r"batch \d+: reading"), 120, "the first batch to start")
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: logged(log, "stopping after the current step"), 30, "the first signal")
    process.send_signal(signal.SIGTERM)  # abandons the batch, unless it just finished
    process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()[-3000:]

    again = start_run(*args, "--once", state=tmp_path / "state", log=log)
    again.communicate(timeout=240)
    assert again.returncode == 0
    assert_exactly_once(broker.bootstrap, topic, data, registry, produced)


def test_a_paused_broker_is_waited_for_with_retries_and_nothing_is_lost(
    tmp_path, publish, anvil, registry
):
    broker = start_broker(tmp_path / "broker")
    try:
        produced = publish(broker, "paused", nodes=8, duration_s=20).messages
        data, log = tmp_path / "data", tmp_path / "run.log"
        args = run_args(broker.bootstrap, "paused", data, anvil.rpc_url, registry.address)
        process = start_run(
            *args, "--once", "--kafka-timeout", "1", "--backoff-max", "1",
            state=tmp_path / "state", log=log,
        )  # fmt: skip
        wait_for(lambda: logged(log, r"batch \d+ on"), 120, "the first batch")
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: logged(log, r"\(attempt 3\)"), 60, "retries while the broker sleeps")
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        process.communicate(timeout=240)
        assert process.returncode == 0, log.read_text()[-3000:]
        assert "failed (attempt 1)" in log.read_text()
        assert_exactly_once(broker.bootstrap, "paused", data, registry, produced)
    finally:
        stop_broker(tmp_path / "broker")


def test_while_the_chain_is_unreachable_no_offset_is_committed_past_an_anchor(
    broker, topic, tmp_path, publish, anvil, registry
):
    relay = TcpRelay(anvil.port, free_port())
    relay.open()
    first = publish(broker, topic, nodes=4, duration_s=10, seed=1).messages
    data, log = tmp_path / "data", tmp_path / "run.log"
    args = run_args(broker.bootstrap, topic, data, relay.url, registry.address)
    process = start_run(*args, "--backoff-max", "1", state=tmp_path / "state", log=log)
    source = open_source(broker.bootstrap)
    group = f"group-{topic}"
    try:
        wait_for(lambda: logged(log, r"batch \d+ on"), 120, "the first batch")
        relay.close()
        second = publish(broker, topic, nodes=4, duration_s=10, seed=2, start_ms=1_764_000_100_000)
        wait_for(lambda: logged(log, r"\(attempt 3\)"), 60, "retries while the chain is away")

        committed = sum(source.committed(group, topic).values())
        anchored = sum(a.tree_size for d in DATASETS if (a := registry.latest(d)) is not None)
        assert committed <= anchored < first + second.messages  # offsets wait for anchors

        relay.open()
        ends = source.high_watermarks(topic)
        wait_for(lambda: source.committed(group, topic) == ends, 120, "catching up", 0.5)
    finally:
        relay.close()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert_exactly_once(broker.bootstrap, topic, data, registry, first + second.messages)
