"""A topic's log that no longer holds what the stream stands on (the topic deleted and
recreated, a log truncated, unread records deleted by retention) stops the stream with a
reason: those records would otherwise never be read, and nothing would say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.errors import OffsetOutOfRangeError
from retention_support import (
    batch_bases,
    delete_a_batch,
    delete_below,
    publish_twice,
    stored_broker_in,
)
from run_helpers import run_args

from cli.main import main
from pipelines.kafka_source import (
    CLIENTS,
    OffsetRange,
    Positions,
    RecordsLost,
    TopicNotFound,
    open_source,
    read_on_from,
)
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


def _journal(config: RunConfig) -> BatchJournal:
    return BatchJournal(workspace(config.data_dir).store, read_only=True)


def _refused(config: RunConfig, source, chain, stood: dict[int, int]) -> str:
    """Why a batch is refused (``RecordsLost``); nothing of it is journaled."""
    with pytest.raises(RecordsLost) as raised:
        run_batch(config, source, chain.anchor)
    assert _journal(config).journal_ends(config.topic) == stood
    return str(raised.value)


class BrokerWithoutTopicIds:
    """The real broker's source, as a broker before Kafka 2.8 (no topic ids) answers."""

    def __init__(self, source: object) -> None:
        self.source = source

    def __getattr__(self, name: str) -> object:
        return getattr(self.source, name)

    def topic_id(self, topic: str) -> None:
        return None


@pytest.mark.parametrize("client", CLIENTS)
def test_a_topic_s_id_is_the_same_from_either_client_and_another_once_it_is_recreated(
    broker, topic, publish, client
):
    publish(broker, topic, nodes=1, duration_s=1)
    first = open_source(broker.bootstrap, client=client).topic_id(topic)
    assert first == open_source(broker.bootstrap).topic_id(topic)
    _recreate(broker.bootstrap, topic, partitions=4)
    again = open_source(broker.bootstrap, client=client).topic_id(topic)
    assert len({first, again}) == 2 and None not in {first, again}


@pytest.mark.parametrize("client", CLIENTS)
def test_the_id_of_a_topic_that_does_not_exist_is_topic_not_found(broker, topic, client):
    with pytest.raises(TopicNotFound):
        open_source(broker.bootstrap, client=client).topic_id(topic)


def test_a_recreated_topic_stops_the_stream_even_once_its_new_log_is_past_the_old_offsets(
    broker, topic, chain, publish, streamed
):
    read_id = open_source(broker.bootstrap).topic_id(topic)  # before: the stream read it
    stood = _journal(streamed).journal_ends(topic)
    _recreate(broker.bootstrap, topic)
    publish(broker, topic, nodes=20, duration_s=20, seed=2)
    source = open_source(broker.bootstrap)
    ends, new_id = source.high_watermarks(topic), source.topic_id(topic)
    assert all(ends[p] > stood[p] for p in range(4))  # offsets alone cannot tell
    assert _refused(streamed, source, chain, stood) == (
        f"{topic} was deleted and recreated (its id is {new_id}; the stream read {read_id}): "
        "its offsets start again, and the records of the new log below where the stream "
        "stands would never be read, so nothing more of it is read"
    )


def test_a_log_that_ends_before_where_the_stream_stands_stops_it_with_the_offsets(
    broker, topic, chain, publish, streamed
):
    stood = _journal(streamed).journal_ends(topic)
    _recreate(broker.bootstrap, topic)
    publish(broker, topic, nodes=3, duration_s=10, seed=2)  # 56 records: every log ends lower
    source = BrokerWithoutTopicIds(open_source(broker.bootstrap))
    ends = source.high_watermarks(topic)
    assert _refused(streamed, source, chain, stood) == (
        f"{topic}'s log is behind this stream (deleted and recreated, or truncated by the "
        "broker), and its records below where the stream stands would never be read, so "
        "nothing more of it is read: "
        + "; ".join(f"partition {p} ends at offset {ends[p]}, the stream stands at {stood[p]}"
                    for p in range(4))
    )  # fmt: skip


def test_partitions_gone_or_ending_before_where_the_stream_stands_are_each_named():
    positions = Positions(committed={0: 100, 1: 126, 3: 0}, ends={0: 0, 1: 126, 3: 5})
    with pytest.raises(RecordsLost) as raised:
        read_on_from("t", positions, planned={0: 129, 2: 129}, read_ids=set())
    assert str(raised.value).endswith(
        "nothing more of it is read: partition 0 ends at offset 0, the stream stands at 129; "
        "partition 2 is gone, the stream stands at 129"
    )  # partition 1 is where the stream stands, and partition 3 behind its end


def test_lost_records_are_a_broker_fault_that_is_not_retried():
    try:
        try:
            raise OffsetOutOfRangeError("offset 0 of telemetry/1")
        except OffsetOutOfRangeError as cause:
            raise RecordsLost("reading telemetry/1: records are no longer on the broker") from cause
    except RecordsLost as error:
        assert (failure_kind(error), is_transient(error)) == ("broker", False)


@pytest.fixture(scope="module")
def stored_broker(tmp_path_factory):
    with stored_broker_in(tmp_path_factory.mktemp("stored-broker")) as broker_and_objects:
        yield broker_and_objects


@pytest.mark.parametrize("client", CLIENTS)
def test_an_empty_partition_s_log_starts_at_zero_on_a_stored_broker(
    stored_broker, topic, publish, client
):
    broker, _ = stored_broker
    publish(broker, topic, nodes=1, duration_s=2)  # one node: one partition of four has records
    source = open_source(broker.bootstrap, client=client)
    assert source.log_starts(topic) == dict.fromkeys(range(4), 0)
    source.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_a_partition_s_log_start_is_where_a_stream_that_read_nothing_of_it_starts(
    stored_broker, topic, data_dir, chain, publish, client
):
    broker, objects = stored_broker
    publish_twice(broker, topic, publish)
    source = open_source(broker.bootstrap, client=client)
    assert source.log_starts(topic) == dict.fromkeys(range(4), 0)
    partition, log_start = delete_a_batch(objects, topic, at={})
    config = RunConfig(broker.bootstrap, topic, f"group-{topic}", data_dir, kafka_client=client)
    summary = run_batch(config, source, chain.anchor)
    ends = source.high_watermarks(topic)
    source.close()
    first = [r["start"] for r in summary.ranges if r["partition"] == partition]
    assert (first, summary.read) == ([log_start], sum(ends.values()) - log_start)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_log_start_past_where_the_stream_stands_stops_it_naming_the_deleted_offsets(
    stored_broker, topic, data_dir, chain, publish, client
):
    broker, objects = stored_broker
    publish(broker, topic, nodes=6, duration_s=10)
    config = RunConfig(broker.bootstrap, topic, f"group-{topic}", data_dir, kafka_client=client)
    source = open_source(broker.bootstrap, client=client)
    run_batch(config, source, chain.anchor)
    stood = source.high_watermarks(topic)
    publish_twice(broker, topic, publish)
    partition, log_start = delete_a_batch(objects, topic, at=stood)
    _refused_as_deleted(config, source, chain, partition, stood[partition], log_start)


def test_records_retention_deleted_from_a_partition_empty_at_every_plan_stop_the_stream(
    stored_broker, topic, data_dir, chain, publish
):
    """The stream knows a partition from the first plan that saw it, empty or not: records
    that then come to it and go before they are read are lost, not a log starting later."""
    broker, objects = stored_broker
    publish(broker, topic, nodes=1, duration_s=2)  # one node: one partition of four has records
    config = RunConfig(broker.bootstrap, topic, f"group-{topic}", data_dir)
    source = open_source(broker.bootstrap)
    first = run_batch(config, source, chain.anchor)
    [read] = [r["partition"] for r in first.ranges]
    unread = _journal(config).batch(first.batch_id)["plan"]["unread_from"]
    assert unread == [{"partition": p, "offset": 0} for p in range(4) if p != read]
    publish_twice(broker, topic, publish)
    empty = next(p for p in range(4) if p != read and len(batch_bases(objects, topic, p)) > 1)
    log_start = batch_bases(objects, topic, empty)[1]
    delete_below(objects, topic, empty, log_start)
    _refused_as_deleted(config, source, chain, empty, 0, log_start)


def _refused_as_deleted(config, source, chain, partition: int, stood: int, log_start: int):
    """The next batch is refused, naming the offsets retention deleted; the source closed."""
    with pytest.raises(RecordsLost) as raised:
        run_batch(config, source, chain.anchor)
    source.close()
    assert str(raised.value) == (
        f"the broker deleted records of {config.topic} before this stream read them "
        f"(retention), so nothing more of it is read: partition {partition}: offsets {stood} "
        f"to {log_start - 1}"
    )


def test_a_partition_a_plan_names_at_offset_zero_is_known_there_and_one_it_does_not_is_not():
    positions = Positions(committed={}, ends={0: 9, 1: 9}, log_starts={0: 4, 1: 4})
    with pytest.raises(RecordsLost, match=r"partition 0: offsets 0 to 3$"):
        read_on_from("t", positions, planned={0: 0}, read_ids=set())
    assert read_on_from("t", positions, planned={}, read_ids=set()).starts == {0: 4, 1: 4}


@pytest.mark.parametrize("client", CLIENTS)
def test_a_read_of_a_range_retention_deleted_since_its_plan_fails_naming_the_offsets(
    stored_broker, topic, publish, client
):
    broker, objects = stored_broker
    publish_twice(broker, topic, publish)
    source = open_source(broker.bootstrap, client=client)
    ends = source.high_watermarks(topic)
    partition, log_start = delete_a_batch(objects, topic, at={})
    planned = OffsetRange(topic, partition, 0, ends[partition])
    with pytest.raises(RecordsLost) as raised:
        source.read(planned)
    assert str(raised.value) == (
        "the broker deleted records before this read took them (retention): "
        f"{planned.name}: offsets 0 to {log_start - 1}"
    )
    rest = source.read(OffsetRange(topic, partition, log_start, ends[partition]))
    assert rest.column("offset").to_pylist() == list(range(log_start, ends[partition]))
    source.close()


@pytest.fixture
def recreated_after_a_run(broker, topic, tmp_path, anvil, registry, publish, monkeypatch):
    """``rda run --once``'s arguments and the records the recreated topic holds, after a run
    read ``topic`` and the topic was recreated (and published to again)."""
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    args = ["run", "--once", *run_args(broker.bootstrap, topic, tmp_path / "data",
            anvil.rpc_url, registry.address), "--max-batch-records", "1000"]  # fmt: skip
    publish(broker, topic, nodes=4, duration_s=10)
    assert main(args) == 0
    _recreate(broker.bootstrap, topic)
    return args, publish(broker, topic, nodes=2, duration_s=5, seed=2).messages


def test_rda_run_says_which_records_it_cannot_read_and_exits_with_an_outside_fault(
    topic, recreated_after_a_run, capfd
):
    capfd.readouterr()
    args, _ = recreated_after_a_run
    assert main(args) == 3
    (line,) = [line for line in capfd.readouterr().err.splitlines() if "rda: error" in line]
    assert line.startswith(f"rda: error: broker: RecordsLost: {topic} was deleted and recreated ")


def _status(broker, topic: str, data: Path, *flags: str) -> list[str]:
    return ["status", *flags, "--bootstrap", broker.bootstrap, "--topic", topic,
            "--group", f"group-{topic}", "--data-dir", str(data)]  # fmt: skip


def test_rda_status_says_why_the_lag_of_a_recreated_topic_is_never_read(
    broker, topic, tmp_path, recreated_after_a_run, capfd
):
    capfd.readouterr()
    assert main(_status(broker, topic, tmp_path / "data", "--json")) == 0
    lag = json.loads(capfd.readouterr().out)["lag"]["topics"][topic]
    assert lag["total"] == recreated_after_a_run[1]  # the new log's records: never read
    assert lag["records_lost"].startswith(f"{topic} was deleted and recreated (its id is ")


def test_rda_status_s_table_says_it_under_the_topic_s_lag(
    broker, topic, tmp_path, recreated_after_a_run, capfd
):
    capfd.readouterr()
    assert main(_status(broker, topic, tmp_path / "data")) == 0
    printed = " ".join(capfd.readouterr().out.split())  # the table's lines wrapped as they come
    assert f"{topic}: records lost: {topic} was deleted and recreated (its id is " in printed
