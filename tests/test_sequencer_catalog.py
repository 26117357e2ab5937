"""The sequencer holds the work directory's catalog for a whole batch, and lets it go while a
node mines the anchor: readers of the catalog are not shut out for a block time."""

from __future__ import annotations

import fcntl
import os

import pytest

from pipelines.kafka_source import open_source
from sinks.layout import DataLayout
from streaming.chain import ChainContext, open_chain
from streaming.driver import RunConfig, run_batch


def writer_lock_is_free(layout: DataLayout) -> bool:
    """Whether another process could take the writer lock now (a second open file: flock
    refuses it while the sequencer's holds the lock, even in the same process)."""
    fd = os.open(layout.writer_lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


class Probe:
    """The chain's anchorer, looking at the writer lock as the anchor is sent."""

    def __init__(self, chain: ChainContext, layout: DataLayout, in_process: bool) -> None:
        self.chain, self.layout, self.in_process = chain, layout, in_process
        self.lock_free_at_anchor: list[bool] = []

    def __call__(self, checkpoints: list[dict]) -> list[dict]:
        self.lock_free_at_anchor.append(writer_lock_is_free(self.layout))
        return self.chain.anchor(checkpoints)

    def latest(self, log: str):
        return self.chain.latest(log)


@pytest.mark.parametrize(("in_process", "held"), [(True, True), (False, False)])
def test_the_catalog_is_let_go_only_while_a_node_mines_the_anchor(
    broker, topic, publish, tmp_path, in_process, held
):
    publish(broker, topic, nodes=6, duration_s=5)
    data = tmp_path / "data"
    probe = Probe(open_chain("embedded", None, None), DataLayout(data), in_process)
    config = RunConfig(broker.bootstrap, topic, "g", data, isolate=False)
    summary = run_batch(config, open_source(broker.bootstrap), probe)
    assert summary is not None and summary.checkpoints
    assert probe.lock_free_at_anchor == [not held]
    assert writer_lock_is_free(DataLayout(data))  # and let go at the end either way
