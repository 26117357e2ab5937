"""``rda run`` forks its landing children while it is one thread with no Kafka client.

A fork copies the locks other threads hold, not the threads that would release them. Forked
beside the lag watcher's first refresh (``--metrics-port``), the child found confluent_kafka's
import lock held, or librdkafka's state half made, and landed nothing until the stall check
killed it two minutes later (a CI run's metrics test timed out on it)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from infra.tools import free_port
from streaming.landers import default_processes

# `rda run`, with the landing child's fork recorded: the process's threads at that moment, as
# Python names them and as the kernel does (librdkafka's are not Python threads: "rdk:…").
RUN_RECORDING_THE_FORK = """
import json, os, sys, threading
from streaming.lander import Lander
fork = Lander._start
def recording(self):
    print(json.dumps({
        "os_threads": sorted(
            open(f"/proc/self/task/{task}/comm").read().strip()
            for task in os.listdir("/proc/self/task")
        ),
        "python_threads": sorted(t.name for t in threading.enumerate()),
    }), flush=True)
    fork(self)
Lander._start = recording
from cli.main import main
sys.exit(main(["run", *sys.argv[1:]]))
"""


def test_the_landing_child_is_forked_before_any_other_thread_starts(
    broker, topic, tmp_path, publish
):
    produced = publish(broker, topic, nodes=3, duration_s=4)
    result = subprocess.run(
        [sys.executable, "-c", RUN_RECORDING_THE_FORK,
         "--bootstrap", broker.bootstrap, "--topic", topic, "--group", f"g-{topic}",
         "--data-dir", str(tmp_path / "data"), "--chain", "embedded", "--once", "--json",
         "--metrics-port", str(free_port()), "--lag-interval", "0.1",
         "--quality", "queue"],  # GE queued: its worker would be a process (Popen), no thread
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
        env={**os.environ, "RDA_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    forks = [json.loads(line) for line in lines if line.startswith('{"os_threads"')]
    assert len(forks) == default_processes()  # each landing child's (streaming/landers.py)
    for at_fork in forks:
        assert at_fork["python_threads"] == ["MainThread"]
        # Idle pools of native libraries (Arrow's, jemalloc's) are there from their import on,
        # and made fork-safe by those libraries; a Kafka client's threads are not.
        assert not [name for name in at_fork["os_threads"] if name.startswith("rdk:")]
    report = json.loads("\n".join(lines[len(forks) :]))
    assert report["totals"]["read"] == produced.messages


def test_a_batch_landed_in_a_child_of_its_own_is_forked_with_no_kafka_client_open(
    broker, topic, tmp_path, publish, monkeypatch
):
    """Without a kept lander, each batch forks a landing child; the driver's own consumer (its
    positions, its commits) is closed first, and opened again when next used."""
    from pipelines.kafka_source import open_source
    from streaming import poison
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, run_batch

    produced = publish(broker, topic, nodes=3, duration_s=4)
    kafka_threads_at_fork: list[Counter] = []
    fork = poison.run_isolated

    def recording(*args, **kwargs):
        kafka_threads_at_fork.append(kafka_threads())
        return fork(*args, **kwargs)

    monkeypatch.setattr(poison, "run_isolated", recording)
    gc.collect()
    # A client another test of this process left open has threads of its own: not the run's.
    others = kafka_threads()
    source = open_source(broker.bootstrap)
    source.high_watermarks(topic)  # a consumer of this process's, open
    assert kafka_threads() > others
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", tmp_path / "data")
    summary = run_batch(config, source, open_chain("embedded", None, None).anchor)
    assert [at_fork - others for at_fork in kafka_threads_at_fork] == [Counter()]
    assert summary.read == produced.messages


def kafka_threads() -> Counter:
    """This process's librdkafka threads ("rdk:…": not Python threads), by name."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except FileNotFoundError:  # a thread that ended since the listing: not running at fork
            continue
    return Counter(name for name in names if name.startswith("rdk:"))
