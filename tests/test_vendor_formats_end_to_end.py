"""Every simulator format through the real broker and the driver to published Parquet; and a
format quarantined before its adapter existed, replayed once it does."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

import schemas.adapters as adapters
from pipelines.kafka_source import open_source
from simulator.fleet import generate
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch
from streaming.journal import BatchJournal
from streaming.replay import replay

START_MS = 1_764_000_000_000
DATASET = {
    "gnmi.json": "radio_kpi.v1",
    "ems.csv": "radio_kpi.v1",
    "ripe.atlas.result": "link_kpi.v1",
}


def published_rows(data_dir, dataset: str) -> int:
    files = sorted((data_dir / "published" / dataset).glob("shards/*/data/*.parquet"))
    return sum(pq.read_metadata(f).num_rows for f in files)


@pytest.mark.parametrize("wire_format", sorted(DATASET))
def test_each_simulator_format_is_published_with_reconciled_counts(
    broker, topic, data_dir, wire_format
):
    messages = generate(6, 20, 1.0, START_MS, 7, 0.1, wire_format)
    produced = produce(broker.bootstrap, topic, messages)
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir, wire_format=None)
    summary = run_batch(
        config, open_source(broker.bootstrap), open_chain("embedded", None, None).anchor
    )
    defects = sum(produced.defects.values())
    assert defects > 0
    assert (summary.read, summary.published, summary.quarantined) == (
        produced.messages,
        produced.messages - defects,
        defects,
    )
    assert published_rows(data_dir, DATASET[wire_format]) == summary.published
    assert set(summary.reasons) <= {
        "invalid_json",
        "invalid_csv",
        "no_measurement",
        "invalid_utf8",
        "empty_message",
    }


def test_records_quarantined_before_their_adapter_existed_are_published_by_replay(
    broker, topic, data_dir, monkeypatch
):
    chain = open_chain("embedded", None, None)
    produced = produce(broker.bootstrap, topic, generate(4, 10, 1.0, START_MS, 3, 0.0, "gnmi.json"))
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir)
    with monkeypatch.context() as before_the_adapter:
        before_the_adapter.delitem(adapters._REGISTRY, "gnmi.json")
        summary = run_batch(config, open_source(broker.bootstrap), chain.anchor)
    assert summary.reasons == {"unknown_format": produced.messages}
    first = replay(data_dir, "rda.node.v1", chain.anchor)
    again = replay(data_dir, "rda.node.v1", chain.anchor)
    assert (first.considered, first.published, first.still_quarantined) == (
        produced.messages,
        produced.messages,
        {},
    )
    assert (again.considered, again.published) == (0, 0)
    assert published_rows(data_dir, "radio_kpi.v1") == produced.messages
    with BatchJournal(DataLayout(data_dir).journal) as journal:
        totals = journal.totals()
    assert totals["read"] == totals["published"] + totals["quarantined"] == produced.messages
