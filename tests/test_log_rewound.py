"""A partition's log that no longer holds what the stream stands on (the topic deleted and
recreated, a log truncated) stops the stream with a reason: the records the new log holds
below that offset would otherwise never be read, and nothing would say so."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.errors import OffsetOutOfRangeError
from run_helpers import run_args

from cli.main import main
from pipelines.kafka_source import RecordsLost, open_source
from streaming.driver import RunConfig, run_batch
from streaming.journal import BatchJournal
from streaming.retry import failure_kind, is_transient
from streaming.store import workspace


def _recreate(bootstrap: str, topic: str, partitions: int | None = None) -> None:
    """Delete ``topic``; with ``partitions``, create it again with that many at once."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.result()
    if partitions is not None:
        for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
            future.result()


@pytest.fixture
def streamed(broker, topic, data_dir, chain, publish) -> RunConfig:
    """A stream that has read and anchored a first backlog of ``topic`` (four partitions)."""
    config = RunConfig(broker.bootstrap, topic, f"group-{topic}", data_dir)
    publish(broker, topic, nodes=10, duration_s=20)
    assert run_batch(config, open_source(broker.bootstrap), chain.anchor).read == 430
    return config


def _journal_ends(config: RunConfig) -> dict[int, int]:
    return BatchJournal(workspace(config.data_dir).store, read_only=True).journal_ends(config.topic)


def test_a_recreated_topic_shorter_than_where_the_stream_stands_stops_it_with_the_offsets(
    broker, topic, chain, publish, streamed
):
    stood = _journal_ends(streamed)
    _recreate(broker.bootstrap, topic)
    publish(broker, topic, nodes=3, duration_s=10, seed=2)  # 56 records: every log ends lower
    ends = open_source(broker.bootstrap).high_watermarks(topic)
    with pytest.raises(RecordsLost) as raised:
        run_batch(streamed, open_source(broker.bootstrap), chain.anchor)
    assert str(raised.value) == (
        f"{topic}'s log is behind this stream (deleted and recreated, or truncated by the "
        "broker), and its records below where the stream stands would never be read, so "
        "nothing more of it is read: "
        + "; ".join(f"partition {p} ends at offset {ends[p]}, the stream stands at {stood[p]}"
                    for p in range(4))
    )  # fmt: skip
    assert _journal_ends(streamed) == stood  # nothing planned past the records it cannot see


def test_a_partition_gone_from_a_recreated_topic_stops_the_stream(broker, topic, chain, streamed):
    stood = _journal_ends(streamed)
    _recreate(broker.bootstrap, topic, partitions=2)
    with pytest.raises(RecordsLost) as raised:
        run_batch(streamed, open_source(broker.bootstrap), chain.anchor)
    assert str(raised.value).endswith(
        f"nothing more of it is read: "
        f"partition 0 ends at offset 0, the stream stands at {stood[0]}; "
        f"partition 1 ends at offset 0, the stream stands at {stood[1]}; "
        f"partition 2 is gone, the stream stands at {stood[2]}; "
        f"partition 3 is gone, the stream stands at {stood[3]}"
    )


def test_lost_records_are_a_broker_fault_that_is_not_retried():
    try:
        try:
            raise OffsetOutOfRangeError("offset 0 of telemetry/1")
        except OffsetOutOfRangeError as cause:
            raise RecordsLost("reading telemetry/1: records are no longer on the broker") from cause
    except RecordsLost as error:
        assert (failure_kind(error), is_transient(error)) == ("broker", False)


def test_rda_run_says_which_records_it_cannot_read_and_exits_with_an_outside_fault(
    broker, topic, tmp_path, anvil, registry, publish, capfd, monkeypatch
):
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    args = ["run", "--once", *run_args(broker.bootstrap, topic, tmp_path / "data",
            anvil.rpc_url, registry.address), "--max-batch-records", "1000"]  # fmt: skip
    publish(broker, topic, nodes=4, duration_s=10)
    assert main(args) == 0
    _recreate(broker.bootstrap, topic)
    publish(broker, topic, nodes=2, duration_s=5, seed=2)
    capfd.readouterr()
    assert main(args) == 3
    (line,) = [line for line in capfd.readouterr().err.splitlines() if "rda: error" in line]
    assert line.startswith(f"rda: error: broker: RecordsLost: {topic}'s log is behind this stream")
