"""Fixtures of the quality tests: anchored batches whose GE reports have not run yet, and the
quality worker's process with its jobs gated (``tests/quality_gate.py``); fleet messages
standardized and protected as a landing does (``protected``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from benchmarks.decode import raw_batch
from pipelines.kafka_source import open_source
from pipelines.protect import Protection
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from simulator.fleet import generate
from simulator.producer import produce
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch

START_MS = 1_764_000_000_000
RADIO = "radio_kpi.v1"


def protected(messages, private_dir: Path):
    """``rda.node.v1`` fleet messages standardized and protected as one landed chunk."""
    raw = raw_batch([m.value for m in messages], "rda.node.v1")
    # Kafka timestamps are ingest times: the producer stamps each message when it is sent.
    raw = raw.set_column(3, "timestamp_ms", pa.array([m.timestamp_ms for m in messages]))
    return Protection(str(private_dir))(raw, standardize(raw, adapter_for("rda.node.v1")))


@pytest.fixture(scope="module")
def anchored(broker, tmp_path_factory):
    """One anchored batch of a small fleet whose GE reports have not run yet."""
    data_dir = tmp_path_factory.mktemp("attest") / "data"
    topic = "attest-telemetry"
    produce(broker.bootstrap, topic, list(generate(6, 30, 1, START_MS, 5)))
    chain = open_chain("embedded", None, None)
    config = RunConfig(broker.bootstrap, topic, "attest-group", data_dir)
    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor, lambda _m: None)
    return data_dir, summary, chain


@pytest.fixture
def copy_of(anchored, tmp_path):
    """A private copy of the anchored data directory (tests below change it)."""
    data_dir, summary, chain = anchored
    copied = tmp_path / "data"
    shutil.copytree(data_dir, copied)
    return copied, summary, chain


@pytest.fixture
def two_batches(broker, tmp_path):
    """Two anchored batches of a small fleet, whose GE reports have not run yet."""
    data_dir, topic = tmp_path / "two", "attest-two-batches"
    config = RunConfig(broker.bootstrap, topic, "attest-two-group", data_dir)
    chain = open_chain("embedded", None, None)
    for start_ms in (START_MS, START_MS + 60_000):
        produce(broker.bootstrap, topic, list(generate(6, 30, 1, start_ms, 5)))
        run_batch(config, open_source(broker.bootstrap), chain.anchor, lambda _m: None)
    return data_dir


def gated_worker(gates: Path, data_dir: Path, held: str) -> subprocess.Popen:
    """The worker process with its jobs gated (``tests/quality_gate.py``)."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("quality_gate.py")), str(gates),
         str(data_dir), held],
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
