"""What a quarantine replay must not publish (red team, stop 69): records refused against the
stream's state, records refused by a signature check the replay does not make, across topics
the new records that share a partition and offset with another topic's duplicates."""

from __future__ import annotations

import dataclasses

import pytest
from device_inputs import deployed, edited, make_fleet, make_messages, make_signing, radio
from kafka import KafkaProducer
from test_replay import KV_FORMAT, KeyValueAdapter
from web3 import EthereumTesterProvider, Web3

import schemas.adapters as adapters
from pipelines.kafka_source import open_source
from simulator.fleet import generate
from simulator.producer import produce
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch
from streaming.errors import SettingsError
from streaming.replay import replay


def pending_codes(data_dir) -> dict[str, int]:
    with Catalog(DataLayout(data_dir)) as catalog:
        codes = catalog.quarantine.pending().column("reason_code").to_pylist()
    return {code: codes.count(code) for code in sorted(set(codes))}


def test_records_refused_against_the_stream_s_state_are_not_replayed(broker, topic, data_dir):
    # Judged on their own, 24 of 27 teleports were published, with no fix of anything.
    chain = open_chain("embedded", None, None)
    produce(
        broker.bootstrap, topic, generate(6, 120, 1.0, 1_764_000_000_000, 7, quality_fraction=0.15)
    )
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", data_dir)
    teleports = run_batch(config, open_source(broker.bootstrap), chain.anchor).reasons["teleport"]
    out = replay(data_dir, "auto", chain.anchor)
    assert (out.published, out.not_replayed) == (0, {"teleport": teleports})
    assert pending_codes(data_dir)["teleport"] == teleports
    with pytest.raises(SettingsError, match="decided against the stream's state"):
        replay(data_dir, "auto", chain.anchor, reason="teleport")


def test_records_refused_by_a_signature_check_wait_for_a_replay_that_checks(
    broker, topic, data_dir
):
    fleet = make_fleet()
    signing = make_signing(fleet)
    nodes = deployed(fleet, signing, lambda: Web3(EthereumTesterProvider()))
    messages = make_messages(signing)
    forged, bare = radio(messages, fleet[0].node_id)[3:5]
    messages[forged] = edited(messages[forged], lambda r: r["radio"].update(rsrp=-60.0))
    messages[bare] = dataclasses.replace(messages[bare], headers=())
    produce(broker.bootstrap, topic, messages)
    chain = open_chain("embedded", None, None)
    config = RunConfig(
        broker.bootstrap, topic, f"g-{topic}", data_dir, signatures="required", nodes=nodes
    )
    run_batch(config, open_source(broker.bootstrap), chain.anchor)
    out = replay(data_dir, "auto", chain.anchor, signatures="auto", nodes=None)  # no registry
    assert (out.published, out.not_replayed) == (0, {"bad_signature": 1, "unsigned": 1})
    checked = replay(data_dir, "auto", chain.anchor, signatures="auto", nodes=nodes)
    assert (checked.published, checked.still_quarantined) == (
        0,
        {"bad_signature": 1, "unsigned": 1},
    )


def send(bootstrap: str, topic: str, numbers: range) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n in numbers:
        value = f"node=kv-{n};ts_ms={1_764_000_000_000 + n};down_mbps=50;up_mbps=5;latency_ms=9"
        producer.send(
            topic, key=b"kv", value=value.encode(), partition=0,
            headers=[("rda-format", KV_FORMAT.encode())],
        )  # fmt: skip
    producer.flush()
    producer.close()


def test_another_topic_s_duplicates_at_the_same_offsets_keep_no_new_record(
    broker, data_dir, monkeypatch
):
    chain = open_chain("embedded", None, None)
    a, b = "replay-a", "replay-b"
    send(broker.bootstrap, a, range(5))  # offsets 0-4 of each: no adapter yet, quarantined
    send(broker.bootstrap, b, range(100, 105))  # other keys
    for name in (a, b):
        config = RunConfig(broker.bootstrap, name, f"g-{name}", data_dir)
        run_batch(config, open_source(broker.bootstrap), chain.anchor)
    monkeypatch.setitem(adapters._REGISTRY, KV_FORMAT, (KeyValueAdapter, lambda _: False))
    send(broker.bootstrap, a, range(5))  # A's keys published at offsets 5-9
    run_batch(RunConfig(broker.bootstrap, a, f"g-{a}", data_dir), open_source(broker.bootstrap),
              chain.anchor)  # fmt: skip
    out = replay(data_dir, "rda.node.v1", chain.anchor)
    assert (out.published, out.still_quarantined) == (5, {"duplicate": 5})
    with Catalog(DataLayout(data_dir)) as catalog:
        left = catalog.quarantine.pending().column("topic").to_pylist()
    assert left == [a] * 5
