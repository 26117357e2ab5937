"""Two workers on one data directory and one registry: a batch whose dataset checkpoint another
worker moved while it was being sequenced is refused by the registry, then built on the new
checkpoint and anchored (the compare-and-swap of docs/pipeline.md, "Scale-out")."""

from __future__ import annotations

from pipelines.kafka_source import open_source
from streaming import sequencer
from streaming.chain import open_chain
from streaming.driver import RunConfig, Worker, run_batch

DATASET = "radio_kpi.v1"


def test_a_checkpoint_moved_during_the_batch_is_built_on_at_the_second_attempt(
    broker, topic, publish, tmp_path, monkeypatch
):
    publish(broker, topic, nodes=12, duration_s=10)
    chain, source = open_chain("embedded", None, None), open_source(broker.bootstrap)
    data = tmp_path / "data"

    def config(name: str) -> RunConfig:  # landed in process: no fork while the other sequences
        return RunConfig(
            broker.bootstrap, topic, "g", data, work_dir=tmp_path / name, isolate=False
        )

    first = Worker(id="host/1/1", owned=lambda _topic: {0, 1})
    second = Worker(id="host/2/1", owned=lambda _topic: {2, 3})
    decide_batch = sequencer.event_state.decide_batch
    interleaved: list = []

    def second_worker_anchors_meanwhile(*args, **kwargs):
        # Between the first worker's duplicate check (which read the dataset's checkpoint)
        # and its commit, the second worker publishes and anchors a batch of its own.
        if not interleaved:
            interleaved.append(None)  # once: the second worker's own step goes straight on
            interleaved[0] = run_batch(config("second"), source, chain.anchor, worker=second)
        return decide_batch(*args, **kwargs)

    monkeypatch.setattr(sequencer.event_state, "decide_batch", second_worker_anchors_meanwhile)
    summary = run_batch(config("first"), source, chain.anchor, worker=first)

    (other,) = interleaved
    mine = next(c for c in summary.checkpoints if c["dataset"] == DATASET)
    theirs = next(c for c in other.checkpoints if c["dataset"] == DATASET)
    assert mine["anchor_attempts"] == 2
    assert mine["previous_tree_size"] == theirs["tree_size"]
    latest = chain.latest(DATASET)
    assert latest is not None and latest.tree_size == mine["tree_size"]
    assert mine["tree_size"] > theirs["tree_size"] > 0
