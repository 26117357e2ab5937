"""Producers must key records by node id (docs/pipeline.md, "Scale-out"): duplicates are found
within a shard — one (dataset, topic, partition) — so a producer that sends a node's report to
two partitions gets it published twice, once per shard, while a repeat within one partition is
still quarantined. Nothing is lost either way: every record is counted.
"""

from __future__ import annotations

from kafka import KafkaProducer

from pipelines.kafka_source import open_source
from simulator.fleet import generate
from simulator.messages import FORMAT_HEADER
from simulator.producer import ensure_topic
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch


def send(bootstrap: str, topic: str, placed: list[tuple[int, object]]) -> None:
    """Each message to the partition given, whatever its key (a producer ignoring keys)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for partition, message in placed:
            producer.send(
                topic, key=message.key, value=message.value, partition=partition,
                headers=[(FORMAT_HEADER, message.wire_format.encode())],
                timestamp_ms=message.timestamp_ms,
            )  # fmt: skip
        producer.flush()
    finally:
        producer.close()


def test_a_report_sent_to_two_partitions_is_published_once_per_shard(broker, topic, tmp_path):
    ensure_topic(broker.bootstrap, topic, 2)
    report = next(m for m in generate(1, 5, 1, 1_764_000_000_000, 3) if b"radio" in m.value)
    # Partition 0 twice (a repeat the shard catches), partition 1 once (another shard).
    send(broker.bootstrap, topic, [(0, report), (0, report), (1, report)])
    config = RunConfig(broker.bootstrap, topic, f"g-{topic}", tmp_path / "data")
    chain = open_chain("embedded", None, None)
    summary = run_batch(config, open_source(broker.bootstrap), chain.anchor)
    assert (summary.read, summary.published, summary.quarantined) == (3, 2, 1)
    assert summary.reasons == {"duplicate": 1}
    [checkpoint] = summary.checkpoints
    assert checkpoint["shards"] == 2 and checkpoint["tree_size"] == 2
