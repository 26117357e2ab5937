"""The run's landing children: a large batch's chunks shared between them, the same output."""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming import landers as landers_module
from streaming.isolation import WorkerCrashed
from streaming.landers import SHARED_FROM_RECORDS, Landers


def _plan(sizes: list[int], batch_id: int = 7) -> dict:
    """A plan whose chunks hold ``sizes`` offsets, one partition each, in partition order."""
    chunks = [
        {"topic": "t", "partition": p, "start": 0, "end": size} for p, size in enumerate(sizes)
    ]
    return {"batch_id": batch_id, "chunks": chunks}


def _partitions(share: dict) -> list[int]:
    return [chunk["partition"] for chunk in share["chunks"]]


def _job(share: dict) -> dict:
    """A share's job: the share itself (the children's work functions below take it)."""
    return share


def _pid_and_partitions(share: dict) -> tuple[int, list[int]]:
    return os.getpid(), _partitions(share)


def _partitions_or_die(share: dict) -> list[int]:
    """Batch 7's share holding partition 1 kills its child (SIGKILL); any other lands."""
    if share["batch_id"] == 7 and 1 in _partitions(share):
        os.kill(os.getpid(), signal.SIGKILL)
    return _partitions(share)


def _partitions_or_fail(share: dict) -> list[int]:
    if 0 in _partitions(share):
        raise ValueError("the broker went away")
    return _partitions_or_die(share)


def test_a_batch_under_the_threshold_is_one_share_the_plan_itself():
    plan = _plan([SHARED_FROM_RECORDS // 4] * 3)
    assert Landers(_job, 2).shares(plan) == [plan]


def test_a_large_batch_is_shared_whole_chunks_balanced_each_share_in_plan_order():
    plan = _plan([50_000, 46_020, 61_254 - 50_000, 50_000, 64_237 - 50_000, 49_783])
    shares = Landers(_job, 2).shares(plan)
    assert [_partitions(s) for s in shares] == [[0, 2, 5], [1, 3, 4]]
    assert [s["batch_id"] for s in shares] == [7, 7]


def test_one_landing_process_never_shares():
    plan = _plan([50_000] * 4)
    assert Landers(_job, 1).shares(plan) == [plan]


@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=12), st.integers(1, 4))
def test_shares_hold_every_chunk_once_and_differ_by_at_most_the_largest_chunk(sizes, processes):
    plan = _plan(sizes)
    shares = Landers(_job, processes).shares(plan)
    held = [p for share in shares for p in _partitions(share)]
    assert sorted(held) == list(range(len(sizes)))
    assert all(_partitions(share) == sorted(_partitions(share)) for share in shares)
    assert len(shares) <= min(processes, len(sizes))
    loads = [sum(sizes[p] for p in _partitions(share)) for share in shares]
    assert max(loads) - min(loads) <= max(sizes)
    assert all(share["chunks"] for share in shares)


def test_each_share_lands_in_its_own_child_and_every_outcome_comes_back():
    crew = Landers(_pid_and_partitions, 2)
    try:
        outcomes = crew.run(_plan([30_000, 20_000, 10_000]), _job, "landing batch 7")
        assert [partitions for _, partitions in outcomes] == [[0], [1, 2]]
        assert [pid for pid, _ in outcomes] == [child.pid for child in crew.children]
        assert len({pid for pid, _ in outcomes} | {os.getpid()}) == 3
        assert not crew.busy
    finally:
        crew.close()


def test_a_share_whose_child_dies_fails_the_landing_as_a_worker_crash():
    crew = Landers(_partitions_or_die, 2)
    try:
        with pytest.raises(WorkerCrashed, match=r"landing batch 7.*killed by SIGKILL"):
            crew.run(_plan([30_000, 30_000]), _job, "landing batch 7")
        assert not crew.busy  # the other share was collected too
        assert crew.run(_plan([30_000, 30_000], 8), _job, "batch 8") == [[0], [1]]
    finally:
        crew.close()


def test_a_crash_is_raised_rather_than_another_share_s_error():
    """The crash is what the batch's crash count, and so its bisection, goes by."""
    crew = Landers(_partitions_or_fail, 2)
    try:
        with pytest.raises(WorkerCrashed):
            crew.run(_plan([30_000, 30_000]), _job, "landing batch 7")
    finally:
        crew.close()


def test_a_batch_landed_in_two_children_publishes_what_one_process_does(
    broker, topic, publish, tmp_path, monkeypatch
):
    from streaming.driver import Worker
    from streaming.poison import landing_process

    publish(broker, topic, nodes=6, duration_s=20, bad_fraction=0.1)
    monkeypatch.setattr(landers_module, "SHARED_FROM_RECORDS", 1)
    shared: list[int] = []
    split = Landers.shares
    monkeypatch.setattr(Landers, "shares", lambda *a: shared.append(len(split(*a))) or split(*a))
    crew = landing_process(2)
    try:
        two = _roots_of_one_batch(broker, topic, tmp_path / "two", Worker(lander=crew))
    finally:
        crew.close()
    one = _roots_of_one_batch(broker, topic, tmp_path / "one", Worker())
    assert shared == [2]
    assert two == one


def _roots_of_one_batch(broker, topic, path, worker) -> tuple[dict, dict]:
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, run_batch

    config = RunConfig(broker.bootstrap, topic, path.name, path, max_chunk_records=100)
    chain = open_chain("embedded", None, None)
    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor, worker=worker)
    roots = {c["dataset"]: (c["tree_size"], c["root"]) for c in summary.checkpoints}
    return roots, {"read": summary.read, "published": summary.published}
