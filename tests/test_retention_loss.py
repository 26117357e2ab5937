"""``--accept-retention-loss``: a stream reads on past records retention deleted before it read
them, and says which, in the batch's plan, its manifests, its summary and its log — whether
they were gone when the batch was planned or went between its plan and its read. Loss of any
other kind is still refused."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from retention_support import delete_a_batch, delete_below, publish_twice, stored_broker_in
from run_helpers import run_args

from cli.main import main
from pipelines.kafka_source import OffsetRange, Positions, RecordsLost, open_source, read_on_from
from proofs.verify import verify_dataset
from streaming import driver
from streaming.driver import RunConfig, Worker, run_batch
from streaming.journal import BatchJournal
from streaming.poison import landing_process
from streaming.records_lost import accept_deleted
from streaming.store import workspace


@pytest.fixture(scope="module")
def stored_broker(tmp_path_factory):
    with stored_broker_in(tmp_path_factory.mktemp("stored-broker")) as broker_and_objects:
        yield broker_and_objects


@pytest.fixture
def stood(stored_broker, topic, data_dir, chain, publish) -> tuple[RunConfig, dict[int, int]]:
    """A stream accepting retention's loss that has read a first backlog of ``topic``, with two
    more published since: its config, and where it stands."""
    broker, _ = stored_broker
    publish(broker, topic, nodes=6, duration_s=10)
    config = RunConfig(
        broker.bootstrap, topic, f"group-{topic}", data_dir, accept_retention_loss=True
    )
    source = open_source(broker.bootstrap)
    run_batch(config, source, chain.anchor)
    ends = source.high_watermarks(topic)
    source.close()
    publish_twice(broker, topic, publish)
    return config, ends


def _plan(config: RunConfig, batch_id: int) -> dict:
    return BatchJournal(workspace(config.data_dir).store, read_only=True).batch(batch_id)["plan"]


def _manifest_batches(config: RunConfig, checkpoints: list[dict]) -> list[dict]:
    root = workspace(config.data_dir).store.local
    paths = [
        root / "published" / c["dataset"] / "checkpoints" / f"{c['tree_size']:012d}.manifest.json"
        for c in checkpoints
    ]
    return [json.loads(path.read_bytes())["batch"] for path in paths]


def _expect_skipped(config, summary, ends_before, ends, partition, log_start) -> None:
    """The batch read everything but the deleted offsets, starting the partition at its log
    start, and said so in its plan, its summary and every manifest it wrote."""
    start = ends_before[partition]
    lost = {"topic": config.topic, "partition": partition, "start": start, "end": log_start}
    plan = _plan(config, summary.batch_id)
    assert plan["lost"] == [lost]
    assert [r["start"] for r in plan["ranges"] if r["partition"] == partition] == [log_start]
    assert summary.lost == log_start - ends_before[partition]
    read = sum(ends.values()) - sum(ends_before.values()) - summary.lost
    assert summary.read == read
    assert read == summary.published + summary.quarantined + summary.suppressed + summary.held
    batches = _manifest_batches(config, summary.checkpoints)
    assert batches and all(b["lost"] == [lost] and b["ranges"] == plan["ranges"] for b in batches)
    published = workspace(config.data_dir).store.local / "published"
    said = (
        f"; its batch skipped {log_start - start} offsets the publisher says the broker deleted "
        f"before they were read (retention): {config.topic}.p{partition} {start}-{log_start - 1}"
    )
    for checkpoint in summary.checkpoints:  # an auditor's checks of what the batch published
        checks = {c.name: c for c in verify_dataset(published / checkpoint["dataset"]).checks}
        assert (checks["files"].ok, checks["root"].ok, checks["manifest"].ok) == (True,) * 3
        assert checks["manifest"].detail.endswith(said)


def test_a_plan_reads_on_from_the_log_start_and_records_the_offsets_retention_deleted(
    stored_broker, stood, chain, caplog
):
    config, ends_before = stood
    partition, log_start = delete_a_batch(stored_broker[1], config.topic, at=ends_before)
    source = open_source(config.bootstrap)
    with caplog.at_level(logging.WARNING, "rda.run"):
        summary = run_batch(config, source, chain.anchor)
    ends = source.high_watermarks(config.topic)
    source.close()
    _expect_skipped(config, summary, ends_before, ends, partition, log_start)
    warned = [r for r in caplog.records if getattr(r, "event", None) == "records_lost"]
    assert [r.getMessage() for r in warned] == [
        f"batch {summary.batch_id}: records the broker deleted before this stream read them "
        f"(retention), found as it was planned: {config.topic}.p{partition} "
        f"{ends_before[partition]}-{log_start - 1}; read on from the log's start "
        "(--accept-retention-loss), recorded in the batch's plan and manifests"
    ]


@pytest.mark.parametrize("kept", [False, True], ids=["a child per batch", "kept children"])
def test_a_read_finding_its_range_deleted_since_the_plan_skips_it_and_journals_the_plan_again(
    stored_broker, stood, chain, monkeypatch, caplog, kept
):
    """The plan was journaled before retention deleted its first offsets (a long outage
    between a plan and its landing): the read finds them gone, the plan is journaled again
    with the partition's range starting at the log start, and the batch lands that."""
    config, ends_before = stood
    deleted = []
    land = driver.land_contained

    def retention_after_the_plan(*args, **kwargs):
        deleted.append(delete_a_batch(stored_broker[1], config.topic, at=ends_before))
        return land(*args, **kwargs)

    monkeypatch.setattr(driver, "land_contained", retention_after_the_plan)
    worker = Worker(lander=landing_process() if kept else None)  # kept: as `rda run` lands
    source = open_source(config.bootstrap)
    try:
        with caplog.at_level(logging.WARNING, "rda.run"):
            summary = run_batch(config, source, chain.anchor, worker=worker)
    finally:
        if worker.lander is not None:
            worker.lander.close()
    ends = source.high_watermarks(config.topic)
    source.close()
    [(partition, log_start)] = deleted
    _expect_skipped(config, summary, ends_before, ends, partition, log_start)
    warned = [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "records_lost"]
    assert len(warned) == 1 and "found by its read, after its plan: " in warned[0]


def test_a_batch_whose_every_range_retention_deleted_since_its_plan_reads_nothing_and_moves_on(
    stored_broker, stood, chain, monkeypatch, publish
):
    """Its ranges keep only their ends, with no chunk to land: the batch publishes nothing,
    commits its ends, and the next batch reads what came after."""
    config, ends_before = stood
    land = driver.land_contained

    def all_deleted_after_the_plan(config_, space, entry, *args, **kwargs):
        publish(stored_broker[0], config.topic, nodes=6, duration_s=10, seed=3)
        for r in entry["plan"]["ranges"]:
            delete_below(stored_broker[1], config.topic, r["partition"], r["end"])
        return land(config_, space, entry, *args, **kwargs)

    monkeypatch.setattr(driver, "land_contained", all_deleted_after_the_plan)
    source = open_source(config.bootstrap)
    summary = run_batch(config, source, chain.anchor)
    monkeypatch.undo()
    plan = _plan(config, summary.batch_id)
    planned = {r["partition"]: r["end"] for r in plan["ranges"]}
    assert plan["lost"] == [
        {"topic": config.topic, "partition": p, "start": ends_before[p], "end": end}
        for p, end in planned.items()
    ]
    assert [(r["start"], r["end"]) for r in plan["ranges"]] == [(e, e) for e in planned.values()]
    lost = sum(end - ends_before[p] for p, end in planned.items())
    assert (summary.read, summary.lost, summary.checkpoints, plan["chunks"]) == (0, lost, [], [])
    after = run_batch(config, source, chain.anchor)
    ends = source.high_watermarks(config.topic)
    source.close()
    starts = {r["partition"]: r["start"] for r in after.ranges}
    assert starts == {p: planned.get(p, ends_before.get(p, 0)) for p in starts}
    assert after.read == sum(ends[p] - start for p, start in starts.items())


def test_without_the_setting_the_same_read_stops_the_stream_and_its_plan_stays(
    stored_broker, stood, chain, monkeypatch
):
    config, ends_before = stood
    config = replace(config, accept_retention_loss=False)
    land = driver.land_contained

    def retention_after_the_plan(*args, **kwargs):
        delete_a_batch(stored_broker[1], config.topic, at=ends_before)
        return land(*args, **kwargs)

    monkeypatch.setattr(driver, "land_contained", retention_after_the_plan)
    source = open_source(config.bootstrap)
    with pytest.raises(RecordsLost):
        run_batch(config, source, chain.anchor)
    source.close()
    [unfinished] = BatchJournal(workspace(config.data_dir).store).unfinished_batches()
    ranges = unfinished["plan"]["ranges"]
    assert "lost" not in unfinished["plan"]
    assert [r["start"] for r in ranges] == [ends_before.get(r["partition"], 0) for r in ranges]


def test_a_recreated_topic_is_refused_even_when_retention_s_loss_is_accepted():
    positions = Positions(committed={0: 40}, ends={0: 12}, topic_id="b", log_starts={0: 0})
    with pytest.raises(RecordsLost, match="deleted and recreated"):
        read_on_from("t", positions, planned={0: 40}, read_ids={"a"}, accept_deleted=True)
    with pytest.raises(RecordsLost, match="log is behind this stream"):
        read_on_from("t", positions, planned={0: 40}, read_ids=set(), accept_deleted=True)


def test_accepted_deleted_offsets_move_the_stream_to_each_log_start():
    positions = Positions(committed={}, ends={0: 90, 1: 50, 2: 7}, log_starts={0: 60, 1: 10})
    read_on = read_on_from("t", positions, {0: 30, 1: 10, 2: 0}, set(), accept_deleted=True)
    assert read_on.starts == {0: 60, 1: 10, 2: 0}
    assert read_on.lost == [OffsetRange("t", 0, 30, 60)]


def _plan_of(*ranges: tuple[int, int, int], chunk: int = 10) -> dict:
    offsets = [OffsetRange("t", p, start, end) for p, start, end in ranges]
    return {
        "batch_id": 7,
        "ranges": [r.as_dict() for r in offsets],
        "chunks": [c.as_dict() for r in offsets for c in r.split(chunk)],
    }


def test_a_plan_s_deleted_offsets_cut_its_ranges_and_chunks_and_keep_the_other_chunks():
    plan = _plan_of((0, 100, 125), (1, 5, 20))
    updated, moved = accept_deleted(plan, {0: 113, 1: 0})
    assert moved == [{"topic": "t", "partition": 0, "start": 100, "end": 113}]
    assert updated["lost"] == moved
    assert updated["ranges"] == _plan_of((0, 113, 125), (1, 5, 20))["ranges"]
    chunks = [(c["partition"], c["start"], c["end"]) for c in updated["chunks"]]
    assert chunks == [(0, 113, 120), (0, 120, 125), (1, 5, 15), (1, 15, 20)]


def test_a_range_wholly_deleted_keeps_only_its_end_and_loses_its_chunks():
    earlier = {"topic": "t", "partition": 0, "start": 9, "end": 100}  # an earlier read's
    plan = {**_plan_of((0, 100, 125)), "lost": [earlier]}
    updated, moved = accept_deleted(plan, {0: 400})
    assert updated["ranges"] == [{"topic": "t", "partition": 0, "start": 125, "end": 125}]
    assert updated["chunks"] == []
    assert updated["lost"] == [*plan["lost"], *moved]
    assert moved == [{"topic": "t", "partition": 0, "start": 100, "end": 125}]


def test_a_plan_nothing_of_which_was_deleted_is_left_as_it_is():
    plan = _plan_of((0, 100, 125))
    assert accept_deleted(plan, {0: 100}) == (plan, [])


@pytest.fixture
def deleted_after_a_run(stored_broker, topic, tmp_path, anvil, registry, publish, monkeypatch):
    """``rda run --once``'s arguments after a run read ``topic`` and retention deleted the
    first records published since; and the offsets deleted (partition, start, end)."""
    broker, objects = stored_broker
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    args = ["run", "--once", *run_args(broker.bootstrap, topic, tmp_path / "data",
            anvil.rpc_url, registry.address), "--max-batch-records", "2000"]  # fmt: skip
    publish(broker, topic, nodes=6, duration_s=10)
    assert main(args) == 0
    source = open_source(broker.bootstrap)
    ends = source.high_watermarks(topic)
    source.close()
    publish_twice(broker, topic, publish)
    partition, log_start = delete_a_batch(objects, topic, at=ends)
    return args, (partition, ends[partition], log_start)


def test_rda_status_says_which_deleted_offsets_the_next_batch_skips_when_accepted(
    stored_broker, topic, tmp_path, deleted_after_a_run, capfd, monkeypatch
):
    _, (partition, start, end) = deleted_after_a_run
    monkeypatch.setenv("RDA_ACCEPT_RETENTION_LOSS", "true")
    capfd.readouterr()
    status = ["status", "--json", "--bootstrap", stored_broker[0].bootstrap, "--topic", topic,
              "--group", f"group-{topic}", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    assert main(status) == 0
    lag = json.loads(capfd.readouterr().out)["lag"]["topics"][topic]
    assert lag["records_lost"] == (
        f"the broker deleted records of {topic} before this stream read them (retention); its "
        f"next batch skips them (accept_retention_loss): partition {partition}: offsets "
        f"{start} to {end - 1}"
    )


def test_rda_run_with_the_flag_reads_on_and_says_what_it_skipped(deleted_after_a_run, capfd):
    args, (partition, start, end) = deleted_after_a_run
    capfd.readouterr()
    assert main([*args, "--accept-retention-loss"]) == 0
    warned = [line for line in capfd.readouterr().err.splitlines() if "(retention)" in line]
    assert len(warned) == 1 and f".p{partition} {start}-{end - 1}; read on from" in warned[0]


def test_rda_verify_shows_an_auditor_what_the_checkpoint_s_batch_skipped(
    deleted_after_a_run, tmp_path, anvil, registry, topic, capfd
):
    args, (partition, start, end) = deleted_after_a_run
    assert main([*args, "--accept-retention-loss"]) == 0
    capfd.readouterr()
    verify = ["verify", "--data-dir", str(tmp_path / "data"), "--registry", registry.address,
              "--rpc-url", anvil.rpc_url]  # fmt: skip
    said = f"the broker deleted before they were read (retention): {topic}.p{partition} "
    for history in ([], ["--history"]):  # the newest checkpoint's check, and its history's step
        assert main([*verify, *history]) == 0
        printed = " ".join(capfd.readouterr().out.split())  # lines wrapped as they come
        assert f"{said}{start}-{end - 1}" in printed
