"""Quarantine replay: after a fix, quarantined records are published once, anchored, resolved."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer

import schemas.adapters as adapters
from pipelines.kafka_source import open_source
from proofs.verdict import VERIFIED
from proofs.verify import verify_dataset
from schemas.adapters.base import DecodedRows, DecodeResult, canonical_rows, lineage_columns
from schemas.service import SPEED_TEST_V1
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.quarantine import QuarantineRegister
from streaming import replay as replay_module
from streaming.chain import open_chain
from streaming.commit import commit_and_anchor
from streaming.driver import RunConfig, run_batch
from streaming.journal import BatchJournal
from streaming.replay import replay
from streaming.sequencer import record_anchored

RESOLVE = QuarantineRegister.resolve

KV_FORMAT = "vendor.kv"


class KeyValueAdapter:
    """A vendor's ``node=…;ts_ms=…;down_mbps=…;up_mbps=…;latency_ms=…`` speed tests."""

    wire_format = KV_FORMAT
    schemas = (SPEED_TEST_V1,)

    def decode(self, raw: pa.RecordBatch) -> DecodeResult:
        rows = [
            dict(p.split("=", 1) for p in v.decode().split(";"))
            for v in raw.column("value").to_pylist()
        ]
        index = pa.array(range(len(rows)), pa.int64())
        micros = pa.array([int(r["ts_ms"]) * 1000 for r in rows], pa.timestamp("us", tz="UTC"))
        columns = {
            "node_id": [r["node"] for r in rows],
            "event_time": micros,
            "download_mbps": [float(r["down_mbps"]) for r in rows],
            "upload_mbps": [float(r["up_mbps"]) for r in rows],
            "latency_ms": [float(r["latency_ms"]) for r in rows],
        } | lineage_columns(raw, index)
        batch = canonical_rows(SPEED_TEST_V1, columns, len(rows))
        return DecodeResult(parts=(DecodedRows(SPEED_TEST_V1, batch, index),))


def send_kv(bootstrap: str, topic: str, count: int, down: float = 50.0) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(count):
        value = f"node=kv-{i};ts_ms={1_764_000_000_000 + i};down_mbps={down};up_mbps=5;latency_ms=9"
        producer.send(
            topic, key=b"kv", value=value.encode(), headers=[("rda-format", KV_FORMAT.encode())]
        )
    producer.flush()
    producer.close()


@pytest.fixture
def stream(broker, topic, data_dir, publish):
    """A batch in which five records of an unknown format were quarantined."""
    chain = open_chain("embedded", None, None)
    publish(broker, topic, nodes=3, duration_s=10)
    send_kv(broker.bootstrap, topic, 5)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir)
    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor)
    assert summary.reasons == {"unknown_format": 5}
    return chain


@pytest.fixture
def kv_adapter(monkeypatch):
    """The fix: an adapter for the vendor's format is deployed."""
    monkeypatch.setitem(adapters._REGISTRY, KV_FORMAT, (KeyValueAdapter, lambda _: False))


def test_replay_after_a_fix_publishes_the_records_and_anchors_a_checkpoint(
    stream, data_dir, kv_adapter
):
    summary = replay(data_dir, "rda.node.v1", stream.anchor)
    assert (summary.considered, summary.published, summary.still_quarantined) == (5, 5, {})
    (checkpoint,) = [c for c in summary.checkpoints if c["dataset"] == "speed_test.v1"]
    assert stream.registry.get("speed_test.v1", checkpoint["tree_size"]) is not None
    verdict = verify_dataset(
        data_dir / "published" / "speed_test.v1", trust=stream.trust_root(data_dir)
    )
    assert verdict.ok


def test_replayed_records_leave_the_quarantine_and_the_counts_still_reconcile(
    stream, data_dir, kv_adapter
):
    replay(data_dir, "rda.node.v1", stream.anchor)
    with Catalog(DataLayout(data_dir)) as catalog:
        assert catalog.quarantine.pending().num_rows == 0
    with BatchJournal(DataLayout(data_dir).journal) as journal:
        totals = journal.totals()
    assert totals["read"] == totals["published"] + totals["quarantined"]
    assert totals["quarantined"] == 0


def test_replaying_twice_publishes_nothing_twice(stream, data_dir, kv_adapter):
    replay(data_dir, "rda.node.v1", stream.anchor)
    again = replay(data_dir, "rda.node.v1", stream.anchor)
    assert (again.considered, again.published, again.checkpoints) == (0, 0, [])


def test_without_a_fix_records_stay_quarantined_with_their_reason(stream, data_dir):
    summary = replay(data_dir, "rda.node.v1", stream.anchor)
    assert (summary.published, summary.still_quarantined) == (0, {"unknown_format": 5})
    assert summary.checkpoints == []


def test_replay_can_be_limited_to_one_reason(stream, data_dir, kv_adapter):
    assert replay(data_dir, "rda.node.v1", stream.anchor, reason="tombstone").considered == 0
    assert replay(data_dir, "rda.node.v1", stream.anchor, reason="unknown_format").published == 5


class Crash(BaseException):
    """A replay killed at one point of it (as by kill -9: nothing after it runs)."""


@pytest.mark.parametrize("dies_in", ["commit_and_anchor", "record_anchored", "resolve"])
def test_a_replay_killed_midway_is_finished_by_the_next_and_publishes_each_record_once(
    stream, data_dir, kv_adapter, monkeypatch, dies_in
):
    # Past the anchor, the next replay published the same records again (VERIFIED, the journal
    # five short), or left them quarantined as duplicates of themselves.
    def killed(*args, **kwargs):
        raise Crash(dies_in)

    if dies_in == "resolve":
        monkeypatch.setattr(QuarantineRegister, "resolve", killed)
    else:
        monkeypatch.setattr(replay_module, dies_in, killed)
    with pytest.raises(Crash):
        replay(data_dir, "rda.node.v1", stream.anchor)
    monkeypatch.setattr(replay_module, "commit_and_anchor", commit_and_anchor)
    monkeypatch.setattr(replay_module, "record_anchored", record_anchored)
    monkeypatch.setattr(QuarantineRegister, "resolve", RESOLVE)
    again = replay(data_dir, "rda.node.v1", stream.anchor)
    # Past the journaling of its checkpoints, the first batch is finished (its records are no
    # longer pending); killed before, it is closed and its records are taken afresh.
    assert again.considered == (5 if dies_in == "commit_and_anchor" else 0)
    dataset_dir = data_dir / "published" / "speed_test.v1"
    verdict = verify_dataset(dataset_dir, trust=stream.trust_root(data_dir))
    assert verdict.status == VERIFIED and verdict.tree_size == 5
    with Catalog(DataLayout(data_dir)) as catalog:
        assert catalog.quarantine.pending().num_rows == 0
    with BatchJournal(DataLayout(data_dir).journal) as journal:
        totals = journal.totals()
    assert totals["quarantined"] == 0  # the five, counted once published, once less quarantined
    assert totals["read"] == totals["published"] + totals["suppressed"] + totals["held"]


@pytest.mark.parametrize("dies_in", ["commit_and_anchor", "record_anchored"])
def test_records_a_run_published_after_a_killed_replay_are_not_published_again(
    stream, broker, topic, data_dir, kv_adapter, monkeypatch, dies_in
):
    # Killed before its anchor, the replay's batch was later finished as planned although a
    # run had published the same keys meanwhile: each of them twice, VERIFIED.
    def killed(*args, **kwargs):
        raise Crash(dies_in)

    monkeypatch.setattr(replay_module, dies_in, killed)
    with pytest.raises(Crash):
        replay(data_dir, "rda.node.v1", stream.anchor)
    real = {"commit_and_anchor": commit_and_anchor, "record_anchored": record_anchored}
    monkeypatch.setattr(replay_module, dies_in, real[dies_in])
    send_kv(broker.bootstrap, topic, 5)  # the devices send the five reports again
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir)
    run_batch(config, open_source(broker.bootstrap), stream.anchor)
    replay(data_dir, "rda.node.v1", stream.anchor)
    dataset_dir = data_dir / "published" / "speed_test.v1"
    verdict = verify_dataset(dataset_dir, trust=stream.trust_root(data_dir))
    assert verdict.status == VERIFIED and verdict.tree_size == 5
    published = pq.read_table(sorted(dataset_dir.rglob("*.parquet"))).num_rows
    assert published == 5  # no file of the closed batch is left beside the listed ones
