"""A batch's event-time step shared with an idle landing child: every partition decided once,
by whichever process claims it first, and the same bytes published whoever decides it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from streaming import event_state, shared_step
from streaming.shared_step import Claims, offered

pytestmark = pytest.mark.slow  # landing children, forked


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ({"0": 49_837, "1": 46_079, "2": 61_316, "3": 64_335}, ["3", "2", "1", "0"]),  # large
        ({"0": 6_441, "1": 6_441, "2": 6_441, "3": 6_442}, ["3", "2", "1", "0"]),  # a backlog's
        ({"0": 4_096, "1": 4_095, "2": 5_000}, ["2", "0"]),  # from OFFERED_FROM_RECORDS on
        ({"0": 900, "1": 800, "2": 1_000}, []),  # a stream's small batch: not worth sending
        ({"0": 90_000, "1": 12}, []),  # one large partition: this process would only wait
    ],
)
def test_the_child_is_offered_every_large_partition_the_last_first(records, expected):
    assert shared_step.OFFERED_FROM_RECORDS == 4_096
    assert offered(records) == expected


def test_a_partition_is_claimed_once(tmp_path):
    assert Claims(tmp_path).take("2")
    assert not Claims(tmp_path).take("2")
    assert Claims(tmp_path).take("3")


def _claim_all(folder: Path, keys: list[str], answers: multiprocessing.Queue) -> None:
    answers.put([key for key in keys if Claims(folder).take(key)])


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_claiming_from_both_ends_share_the_partitions_without_overlap(
    tmp_path, round_
):
    keys = [str(p) for p in range(200)]
    folder = tmp_path / f"claims-{round_}"
    folder.mkdir()
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    child = fork.Process(target=_claim_all, args=(folder, keys[::-1], answers))
    child.start()
    mine = [key for key in keys if Claims(folder).take(key)]
    theirs = answers.get(timeout=30)
    child.join(30)
    assert not set(mine) & set(theirs)
    assert sorted(mine + theirs, key=int) == keys


def _roots_of_one_batch(broker, topic, path, worker) -> dict:
    from pipelines.kafka_source import open_source
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, run_batch

    config = RunConfig(broker.bootstrap, topic, path.name, path)
    chain = open_chain("embedded", None, None)
    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor, worker=worker)
    roots = {c["dataset"]: (c["tree_size"], c["root"]) for c in summary.checkpoints}
    return {"roots": roots, "read": summary.read, "published": summary.published}


def _slowly(decide, seconds: float):
    def slow(*args, **kwargs):
        time.sleep(seconds)
        return decide(*args, **kwargs)

    return slow


def _fails(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("the step failed")


def _one_shared_batch(broker, topic, path, monkeypatch, here_slowly: bool = True) -> list:
    """One batch with every partition offered to the run's idle landing child; the outcomes'
    partitions the child gave back (per step shared). ``here_slowly``: this process's step
    waits 0.3 s before each partition (the child, forked before, does not), so the child gets
    to the last ones first."""
    from streaming.driver import Worker
    from streaming.poison import landing_process

    monkeypatch.setattr(shared_step, "OFFERED_FROM_RECORDS", 10)
    given_back: list[list[str]] = []
    taken_back = shared_step.Sharing.taken_back

    def recorded(self):
        outcomes = taken_back(self)
        given_back.append(sorted(outcomes))
        return outcomes

    monkeypatch.setattr(shared_step.Sharing, "taken_back", recorded)
    lander = landing_process()
    try:
        lander.start()  # forked now: what is patched below is this process's alone
        with monkeypatch.context() as here:
            if here_slowly:
                here.setattr(event_state, "decide", _slowly(event_state.decide, 0.3))
            roots = _roots_of_one_batch(broker, topic, path, Worker(lander=lander))
    finally:
        lander.close()
    return [roots, given_back]


def test_partitions_the_idle_landing_child_decides_publish_what_this_process_alone_does(
    broker, topic, publish, tmp_path, monkeypatch
):
    from streaming.driver import Worker

    publish(broker, topic, nodes=6, duration_s=20, bad_fraction=0.1)  # quarantines: Kafka read
    shared, given_back = _one_shared_batch(broker, topic, tmp_path / "shared", monkeypatch)
    alone = _roots_of_one_batch(broker, topic, tmp_path / "alone", Worker())
    assert len(given_back) == 1 and given_back[0]  # the child decided some partitions
    assert shared == alone


def _decides_then_dies():
    """The child's step: the partition decided (its files written), then the child killed
    before its outcome is sent, as the kernel's OOM killer would."""
    decide = shared_step.decide

    def step(*args, **kwargs):
        decide(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    return step


@pytest.mark.parametrize("child", ["fails", "dies"])
def test_partitions_the_child_claimed_before_it_failed_are_decided_here_after_all(
    broker, topic, publish, tmp_path, monkeypatch, caplog, child
):
    from streaming.driver import Worker

    publish(broker, topic, nodes=6, duration_s=20)
    # The child's step, once it has claimed a partition.
    monkeypatch.setattr(shared_step, "decide", _fails if child == "fails" else _decides_then_dies())
    shared, given_back = _one_shared_batch(broker, topic, tmp_path / "shared", monkeypatch)
    alone = _roots_of_one_batch(broker, topic, tmp_path / "alone", Worker())
    assert given_back == [[]]
    assert "the event-time step in the helper failed" in caplog.text
    assert ("killed by SIGKILL" in caplog.text) == (child == "dies")
    assert shared == alone


def test_an_error_in_this_process_s_step_waits_for_the_child_s_step_to_end(
    broker, topic, publish, tmp_path, monkeypatch
):
    """The batch is redone after the error: not beside a step still writing its files."""
    from streaming.driver import Worker
    from streaming.poison import landing_process

    publish(broker, topic, nodes=6, duration_s=20)
    monkeypatch.setattr(shared_step, "OFFERED_FROM_RECORDS", 10)
    monkeypatch.setattr(shared_step, "decide", _slowly(shared_step.decide, 0.3))
    lander = landing_process()
    try:
        lander.start()  # the child has the slow step; this process, the failing one
        monkeypatch.setattr(event_state, "decide", _fails)
        with pytest.raises(RuntimeError, match="the step failed"):
            _roots_of_one_batch(broker, topic, tmp_path / "data", Worker(lander=lander))
        assert not lander.busy  # its step had ended before the error left the batch
    finally:
        lander.close()
    scratch = tmp_path / "data" / "private" / "scratch"
    assert not list(scratch.rglob("*"))  # the step's claims went with it


def test_a_step_whose_claims_cannot_be_made_is_decided_here_whole(
    broker, topic, publish, tmp_path, monkeypatch, caplog
):
    from streaming.driver import Worker

    publish(broker, topic, nodes=6, duration_s=20)

    def no_room(*_args: object) -> Claims:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Claims, "make", no_room)
    shared, given_back = _one_shared_batch(
        broker, topic, tmp_path / "shared", monkeypatch, here_slowly=False
    )
    alone = _roots_of_one_batch(broker, topic, tmp_path / "alone", Worker())
    assert given_back == []  # nothing was sent
    assert "no claims for a shared step" in caplog.text
    assert shared == alone
