"""One micro-batch end to end: real broker, Beam on FnApiRunner, Parquet, DuckDB, in-process EVM."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.kafka_source import open_source
from proofs.manifest import load_manifest
from proofs.verify import verify_dataset
from sinks.layout import DataLayout
from sinks.parquet import landed_receipts
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch, sweep_staged
from streaming.journal import BatchJournal
from streaming.quality_queue import pending
from streaming.store import workspace

# Which quarantine reason each injected defect must end up under.
EXPECTED_REASON = {
    "truncated_json": "invalid_json",
    "invalid_utf8": "invalid_utf8",
    "empty_message": "empty_message",
    "missing_node": "missing_required",
    "rsrp_out_of_range": "out_of_range",
    "negative_ues": "out_of_range",
    "wrong_type": "wrong_type",
    "not_a_number": "not_finite",
    "duplicate": "duplicate",
}
DATASET = "radio_kpi.v1"


@pytest.fixture
def chain():
    """A fresh AnchorRegistry per test: anchors are global per dataset id on one registry."""
    return open_chain("embedded", None, None)


def radio(checkpoints: list[dict]) -> dict:
    (checkpoint,) = [c for c in checkpoints if c["dataset"] == DATASET]
    return checkpoint


def batch(broker, topic, data_dir, chain, **overrides):
    config = RunConfig(broker.bootstrap, topic, f"group-{topic}", data_dir, **overrides)
    return run_batch(config, open_source(broker.bootstrap), chain.anchor)


def test_every_record_read_is_published_or_quarantined_under_its_defect(
    broker, topic, data_dir, chain, publish
):
    produced = publish(broker, topic, nodes=20, duration_s=30, bad_fraction=0.1)
    summary = batch(broker, topic, data_dir, chain, max_chunk_records=300)
    expected = Counter()
    for defect, count in produced.defects.items():
        expected[EXPECTED_REASON[defect]] += count
    assert summary.read == produced.messages
    assert summary.read == summary.published + summary.quarantined
    assert summary.reasons == dict(sorted(expected.items()))


def test_published_rows_are_queryable_in_duckdb_and_quarantined_ones_are_not(
    broker, topic, data_dir, chain, publish
):
    publish(broker, topic, nodes=10, duration_s=20, bad_fraction=0.1)
    summary = batch(broker, topic, data_dir, chain)
    db = duckdb.connect(str(DataLayout(data_dir).catalog), read_only=True)
    views = ("radio_kpi_v1", "node_heartbeat_v1", "speed_test_v2")
    published = sum(db.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in views)
    overlap = db.execute(
        "SELECT count(*) FROM radio_kpi_v1 p JOIN quarantine q "
        "ON p.source_partition = q.partition AND p.source_offset = q.offset"
    ).fetchone()[0]
    assert (published, overlap) == (summary.published, 0)
    assert db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == summary.quarantined


def test_offsets_are_committed_so_the_next_batch_finds_nothing_new(
    broker, topic, data_dir, chain, publish
):
    publish(broker, topic, nodes=5, duration_s=10)
    assert batch(broker, topic, data_dir, chain) is not None
    assert batch(broker, topic, data_dir, chain) is None


def test_a_done_batch_leaves_no_staged_rows_or_receipts_and_stays_verifiable(
    broker, topic, data_dir, chain, publish
):
    publish(broker, topic, nodes=5, duration_s=20, bad_fraction=0.1)
    summary = batch(broker, topic, data_dir, chain, max_chunk_records=100)
    private = DataLayout(data_dir).private
    assert summary.published > 0 and summary.quarantined > 0
    assert list((private / "staging").rglob("*.parquet")) == []
    assert list((private / "receipts").glob("*.json")) == []
    assert list((private / "quarantine").rglob("*.parquet")) != []  # the register's files stay
    verdict = verify_dataset(data_dir / "published" / DATASET, trust=chain.trust_root(data_dir))
    assert verdict.ok


def test_staged_files_that_cannot_be_removed_are_said_and_the_batch_is_still_done(
    broker, topic, data_dir, chain, publish, monkeypatch, caplog
):
    def refuse(layout, chunk):
        raise PermissionError(13, "Permission denied", str(layout.receipt_file(chunk.name)))

    monkeypatch.setattr("streaming.driver.discard_staged", refuse)
    produced = publish(broker, topic, nodes=5, duration_s=10)
    summary = batch(broker, topic, data_dir, chain)
    assert summary.read == produced.messages
    assert batch(broker, topic, data_dir, chain) is None  # done: its offsets committed
    assert "its staged files stay: [Errno 13] Permission denied" in caplog.text


def _stop_after_landing(*_args: object) -> None:
    raise RuntimeError("stopped after its landing")


def test_a_run_s_start_removes_the_staged_files_of_done_batches_only(
    broker, topic, data_dir, chain, publish, monkeypatch
):
    """Those a version that never removed them left; an unfinished batch keeps its own."""
    publish(broker, topic, nodes=5, duration_s=10)
    with monkeypatch.context() as older:
        older.setattr("streaming.driver.discard_staged", lambda _layout, _chunk: None)
        batch(broker, topic, data_dir, chain, max_chunk_records=100)
    layout = DataLayout(data_dir)
    done = set(landed_receipts(layout))
    publish(broker, topic, nodes=5, duration_s=10, start_ms=1_764_000_600_000)  # ten minutes on
    with monkeypatch.context() as stopped:
        stopped.setattr("streaming.driver.Sequencer.sequence", _stop_after_landing)
        with pytest.raises(RuntimeError, match="stopped after its landing"):
            batch(broker, topic, data_dir, chain, max_chunk_records=100)
    unfinished = set(landed_receipts(layout)) - done
    assert done and unfinished
    with BatchJournal(layout.journal) as journal:  # an unfinished replay batch lands no chunk
        replay = journal.next_batch_id("replay")
        plan = {"batch_id": replay, "kind": "replay", "ranges": []}
        journal.record_plan(replay, "(replay)", plan)
    assert sweep_staged(workspace(data_dir)) == len(done)
    assert set(landed_receipts(layout)) == unfinished
    staged = {p.stem for p in (layout.private / "staging").rglob("*.parquet")}
    assert staged and staged <= unfinished | {f"{n}.rejected" for n in unfinished}
    resumed = batch(broker, topic, data_dir, chain, max_chunk_records=100)
    assert resumed.resumed and resumed.published > 0


def test_a_second_batch_appends_to_the_log_and_links_to_the_previous_checkpoint(
    broker, topic, data_dir, chain, publish
):
    publish(broker, topic, nodes=5, duration_s=10, seed=1)
    first = radio(batch(broker, topic, data_dir, chain).checkpoints)
    publish(broker, topic, nodes=5, duration_s=10, seed=2, start_ms=1_764_000_100_000)
    second = radio(batch(broker, topic, data_dir, chain).checkpoints)
    manifest, _ = load_manifest(data_dir / second["manifest_path"])
    assert second["tree_size"] > first["tree_size"]
    assert manifest["previous"] == {
        "tree_size": first["tree_size"],
        "root": first["root"],
        "manifest_sha256": first["manifest_sha256"],
    }
    for checkpoint in (first, second):
        anchored = chain.registry.get(DATASET, checkpoint["tree_size"])
        assert anchored.root.hex() == checkpoint["root"]


def test_the_verifier_accepts_the_anchored_dataset(broker, topic, data_dir, chain, publish):
    publish(broker, topic, nodes=5, duration_s=10)
    batch(broker, topic, data_dir, chain)
    verdict = verify_dataset(data_dir / "published" / DATASET, trust=chain.trust_root(data_dir))
    assert verdict.ok
    assert [c.name for c in verdict.checks] == [
        "files", "root", "manifest", "shards", "signature", "identity", "anchor",
    ]  # fmt: skip


def test_changing_one_value_after_anchoring_is_caught_and_named(
    broker, topic, data_dir, chain, publish
):
    publish(broker, topic, nodes=5, duration_s=10)
    batch(broker, topic, data_dir, chain, max_chunk_records=40)
    files = sorted((data_dir / "published" / DATASET).glob("shards/*/data/*.parquet"))
    victim = files[1]
    table = pq.read_table(victim)
    rsrp = table.column("rsrp_dbm").to_pylist()
    rsrp[3] += 1.0
    table = table.set_column(table.schema.get_field_index("rsrp_dbm"), "rsrp_dbm", [rsrp])
    pq.write_table(table, victim, compression="zstd")

    verdict = verify_dataset(data_dir / "published" / DATASET, trust=chain.trust_root(data_dir))
    assert not verdict.ok
    failure = verdict.first_failure
    shard = victim.parent.parent.name
    assert failure.name == "files"
    assert failure.detail.startswith(
        f"{DATASET}/{shard}: shards/{shard}/data/{victim.name}: SHA-256 differs from the manifest"
    )
    assert "row 3 (leaf " in failure.detail


def test_a_batch_interrupted_before_its_anchor_is_redone_identically(
    broker, topic, tmp_path: Path, chain, publish
):
    publish(broker, topic, nodes=6, duration_s=15, bad_fraction=0.05)
    other_registry = open_chain("embedded", None, None)
    clean = batch(broker, topic, tmp_path / "clean", other_registry, max_chunk_records=100)

    class ChainDown:  # reads still answer; the anchor does not
        def __call__(self, _checkpoints):
            raise ConnectionError("chain unreachable")

        latest = staticmethod(chain.latest)

    chain_down = ChainDown()

    config = RunConfig(
        broker.bootstrap, topic, f"other-{topic}", tmp_path / "crashed", max_chunk_records=100
    )
    source = open_source(broker.bootstrap)
    with pytest.raises(ConnectionError):
        run_batch(config, source, chain_down)
    with BatchJournal(DataLayout(tmp_path / "crashed").journal) as journal:
        assert journal.unfinished_batches(topic)[0]["state"] == "committed"
    checkpoints_dir = tmp_path / "crashed" / "published" / DATASET / "checkpoints"
    pending = sorted(p.read_bytes() for p in (checkpoints_dir / "pending").iterdir())
    redone = run_batch(config, source, chain.anchor)
    assert redone.resumed
    final = sorted(p.read_bytes() for p in checkpoints_dir.glob("*.manifest*.json"))
    assert final == pending  # the manifest (and its signature) written before the anchor
    assert not list((checkpoints_dir / "pending").iterdir())
    assert [c["root"] for c in redone.checkpoints] == [c["root"] for c in clean.checkpoints]
    assert chain.registry.get(DATASET, radio(redone.checkpoints)["tree_size"]) is not None
    assert source.committed(f"other-{topic}", topic) == source.high_watermarks(topic)


class _AnchorLost:
    """The anchor fails before its transaction is sent (``before``) or after it was mined, its
    answer lost (``after``): what a run killed on either side of it leaves for its redo."""

    def __init__(self, chain, when: str) -> None:
        self.chain, self.when = chain, when
        self.latest = chain.latest

    def __call__(self, checkpoints):
        if self.when == "after":
            self.chain.anchor(checkpoints)
        raise ConnectionError(f"chain unreachable {self.when} the anchor")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_batch_redone_around_its_anchor_queues_its_checkpoints_for_great_expectations(
    broker, topic, data_dir, chain, publish, when
):
    publish(broker, topic, nodes=4, duration_s=10, bad_fraction=0.05)
    config = RunConfig(broker.bootstrap, topic, f"group-{topic}", data_dir)
    source = open_source(broker.bootstrap)
    with pytest.raises(ConnectionError):
        run_batch(config, source, _AnchorLost(chain, when))
    redone = run_batch(config, source, chain.anchor)
    assert redone.resumed and redone.checkpoints
    queued = [json.loads(job.read_bytes()) for job in pending(DataLayout(data_dir))]
    expected = {(c["dataset"], c["tree_size"], c["manifest_sha256"]) for c in redone.checkpoints}
    assert {(j["dataset"], j["tree_size"], j["manifest_sha256"]) for j in queued} == expected
    for job in queued:  # the rows each checkpoint added, as the files the catalog published
        assert job["files"] and all((data_dir / f["path"]).is_file() for f in job["files"])


def test_records_repeating_published_keys_in_a_later_batch_are_quarantined_as_duplicates(
    broker, topic, data_dir, chain, publish
):
    first = publish(broker, topic, nodes=4, duration_s=10, seed=3)
    before = batch(broker, topic, data_dir, chain)
    publish(broker, topic, nodes=4, duration_s=10, seed=3)  # the same reports, sent again
    again = batch(broker, topic, data_dir, chain)
    assert again.read == first.messages
    assert (again.published, again.quarantined) == (0, first.messages)
    assert again.reasons == {"duplicate": first.messages}
    assert again.checkpoints == []  # nothing new: no dataset grew
    assert before.checkpoints


def test_a_duplicate_in_another_chunk_of_the_same_batch_is_caught(
    broker, topic, data_dir, chain, publish
):
    from simulator.fleet import generate
    from simulator.producer import produce

    one = list(generate(1, 1, 1, 1_764_000_000_000, 4))
    produce(broker.bootstrap, topic, [*one, *one])  # keyed alike: same partition, in order
    summary = batch(broker, topic, data_dir, chain, max_chunk_records=1)
    assert (summary.published, summary.quarantined) == (len(one), len(one))
    assert summary.reasons == {"duplicate": len(one)}
    db = duckdb.connect(str(DataLayout(data_dir).catalog), read_only=True)
    reasons = db.execute("SELECT DISTINCT reason_code FROM quarantine").fetchall()
    assert reasons == [("duplicate",)]


def test_an_unfinished_batch_of_a_topic_named_before_names_were_checked_keeps_its_staged_files(
    data_dir,
):
    """Tansu took `node telemetry`; a journal of an earlier version may name it. Its staged
    files are kept, and every start of a run does not stop on its name."""
    layout = DataLayout(data_dir)
    chunk = {"topic": "node telemetry", "partition": 0, "start": 0, "end": 5}
    receipts = layout.private / "receipts"
    receipts.mkdir(parents=True)
    kept = receipts / "node telemetry-p0000-000000000000-000000000005.json"
    kept.write_text('{"files": {}}')
    with BatchJournal(layout.journal) as journal:
        journal.record_plan(1, "node telemetry", {"batch_id": 1, "ranges": [chunk],
                                                   "chunks": [chunk]}, owner="w")  # fmt: skip
    assert sweep_staged(workspace(data_dir)) == 0
    assert kept.exists()
