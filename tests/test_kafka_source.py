"""Reading bounded offset ranges from a real Kafka-protocol broker on loopback, with each client.

confluent-kafka (librdkafka) is the default; kafka-python is the pure-Python fallback. Both must
behave the same against the broker's quirks (DESIGN.md: Tansu's ListOffsets "latest").
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.confluent_records import _wanted_headers
from pipelines.kafka_source import (
    CLIENTS,
    FORMAT_HEADER,
    KafkaUnavailable,
    OffsetRange,
    first_headers,
    open_source,
)
from schemas.records import SIGNATURE_HEADER
from streaming.isolation import run_isolated


@pytest.fixture(params=CLIENTS)
def client(request) -> str:
    return request.param


def test_high_watermarks_count_every_record_even_where_list_offsets_falls_short(
    broker, topic, publish, client
):
    report = publish(broker, topic, nodes=8, duration_s=40)
    source = open_source(broker.bootstrap, client=client)
    ends = source.high_watermarks(topic)
    assert sorted(ends) == [0, 1, 2, 3]
    assert sum(ends.values()) == report.messages


def test_a_source_kept_open_sees_records_published_since_its_last_answer(
    broker, topic, publish, client
):
    """The confluent source keeps its consumers between calls: a watermark it fetched earlier
    must not end the next batch short of what has been published since."""
    first = publish(broker, topic, nodes=8, duration_s=10)
    source = open_source(broker.bootstrap, client=client)
    assert sum(source.high_watermarks(topic).values()) == first.messages
    second = publish(broker, topic, nodes=8, duration_s=10)
    ends = source.high_watermarks(topic)
    assert sum(ends.values()) == first.messages + second.messages
    partition = max(ends, key=ends.get)
    assert (
        source.read(OffsetRange(topic, partition, 0, ends[partition])).num_rows == ends[partition]
    )
    source.close()


def test_a_forked_child_reads_with_a_client_of_its_own_and_the_parent_s_stays_usable(
    broker, topic, publish
):
    """librdkafka's threads do not survive a fork: a landing child reads with a client it
    creates, and the parent's kept consumers (whose threads stayed with it) go on answering."""
    report = publish(broker, topic, nodes=8, duration_s=10)
    source = open_source(broker.bootstrap, client="confluent")
    ends = source.high_watermarks(topic)
    partition = max(ends, key=ends.get)
    chunk = OffsetRange(topic, partition, 0, ends[partition])

    def read_in_the_child() -> int:
        return open_source(broker.bootstrap, client="confluent").read(chunk).num_rows

    assert run_isolated(read_in_the_child, "reading in a child") == ends[partition]
    assert sum(source.high_watermarks(topic).values()) == report.messages
    assert source.read(chunk).num_rows == ends[partition]
    source.close()


def test_an_empty_partition_has_high_watermark_zero(broker, topic, publish, client):
    publish(broker, topic, nodes=1, duration_s=3)  # one node: one partition gets everything
    ends = open_source(broker.bootstrap, client=client).high_watermarks(topic)
    assert sorted(ends.values())[:3] == [0, 0, 0]


def test_read_returns_exactly_the_offsets_of_the_range_in_order(broker, topic, publish, client):
    publish(broker, topic, nodes=8, duration_s=40)
    source = open_source(broker.bootstrap, client=client)
    partition, end = max(source.high_watermarks(topic).items(), key=lambda item: item[1])
    batch = source.read(OffsetRange(topic, partition, 5, end - 3))
    assert batch.column("offset").to_pylist() == list(range(5, end - 3))
    assert set(batch.column("format").to_pylist()) == {"rda.node.v1"}


def test_ranges_read_together_are_each_what_reading_it_alone_gives(broker, topic, publish, client):
    publish(broker, topic, nodes=8, duration_s=20)
    source = open_source(broker.bootstrap, client=client)
    ends = source.high_watermarks(topic)
    ranges = [  # to a partition's end, within one, empty, from its start
        OffsetRange(topic, 0, 3, ends[0]),
        OffsetRange(topic, 1, 2, ends[1] - 2),
        OffsetRange(topic, 2, 4, 4),
        OffsetRange(topic, 3, 0, ends[3]),
    ]
    together = source.read_many(ranges)
    one_by_one = open_source(broker.bootstrap, client=client)
    alone = [one_by_one.read(r) for r in ranges]
    one_by_one.close()
    assert [b.num_rows for b in together] == [r.size for r in ranges]
    assert [b.to_pylist() for b in together] == [b.to_pylist() for b in alone]
    again = source.read_many(ranges[:2])  # the source stays usable, its reader unassigned
    assert [b.to_pylist() for b in again] == [b.to_pylist() for b in alone[:2]]
    source.close()


@pytest.mark.parametrize(
    "ranges",
    [
        [OffsetRange("t", 0, 0, 5), OffsetRange("t", 0, 5, 9)],
        [OffsetRange("t", 0, 0, 5), OffsetRange("u", 1, 0, 5)],
    ],
    ids=["one partition twice", "two topics"],
)
def test_ranges_read_together_are_of_one_topic_and_distinct_partitions(ranges, client):
    source = open_source("127.0.0.1:1", client=client)  # refused before any connection
    with pytest.raises(ValueError, match="ranges read together must be of"):
        source.read_many(ranges)


def test_an_empty_range_reads_nothing_without_contacting_the_broker(client):
    source = open_source("127.0.0.1:1", client=client)
    assert source.read(OffsetRange("t", 0, 7, 7)).num_rows == 0


def test_committed_offsets_round_trip_through_the_group(broker, topic, publish, client):
    publish(broker, topic, nodes=4, duration_s=5)
    source = open_source(broker.bootstrap, client=client)
    group = f"group-{topic}"
    assert source.committed(group, topic) == {0: 0, 1: 0, 2: 0, 3: 0}
    source.commit(group, topic, {1: 4, 3: 2})
    assert source.committed(group, topic) == {0: 0, 1: 4, 2: 0, 3: 2}


def test_split_covers_the_range_with_bounded_chunks():
    chunks = OffsetRange("t", 1, 10, 35).split(10)
    assert [(c.start, c.end) for c in chunks] == [(10, 20), (20, 30), (30, 35)]


def test_a_range_cannot_run_backwards():
    with pytest.raises(ValueError, match="invalid offset range"):
        OffsetRange("t", 0, 9, 3)


def test_unknown_topic_is_a_clear_error(broker, client):
    with pytest.raises(KeyError, match="does not exist"):
        open_source(broker.bootstrap, client=client).partitions("no-such-topic")


def test_no_broker_is_reported_as_unavailable(client):
    with pytest.raises(KafkaUnavailable, match=r"no Kafka broker answers at 127\.0\.0\.1:1"):
        open_source("127.0.0.1:1", 2, client).partitions("t")


def test_each_record_keeps_its_key_value_timestamp_and_first_format_and_signature_headers(
    broker, topic, client
):
    """The raw columns, built a column at a time from a range's messages: a repeated header
    counts with its first value, a record without headers has neither, a tombstone's value is
    null."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    sent = [
        (b"k0", b'{"a":1}', [("rda-format", b"rda.node.v1"), ("rda-sig", b"c2ln")], 1_000),
        (None, b"x", [("rda-format", b"ems.csv"), ("rda-format", b"other"), ("n", b"1")], 2_000),
        (b"k2", b"y", None, 3_000),
        (b"k3", None, [("rda-sig", b"\xff")], 4_000),
    ]
    for key, value, headers, timestamp in sent:
        producer.produce(topic, value, key, partition=0, headers=headers, timestamp=timestamp)
    producer.flush(30)
    batch = open_source(broker.bootstrap, client=client).read(OffsetRange(topic, 0, 0, 4))
    assert batch.to_pydict() == {
        "topic": [topic] * 4,
        "partition": [0] * 4,
        "offset": [0, 1, 2, 3],
        "timestamp_ms": [1_000, 2_000, 3_000, 4_000],
        "key": [b"k0", None, b"k2", b"k3"],
        "value": [b'{"a":1}', b"x", b"y", None],
        "format": ["rda.node.v1", "ems.csv", None, None],
        "signature": ["c2ln", None, None, "\ufffd"],
    }


header_lists = st.lists(
    st.none()
    | st.lists(
        st.tuples(
            st.sampled_from([FORMAT_HEADER, SIGNATURE_HEADER, "other"]),
            st.none() | st.binary(max_size=6) | st.sampled_from([b"rda.node.v1", b"\xff"]),
        ),
        max_size=4,
    ),
    max_size=12,
)


@given(header_lists)
def test_the_headers_of_a_range_are_read_in_one_pass_as_each_message_alone_gives_them(lists):
    def alone(headers, name):  # a message's first value of the header, as text
        value = first_headers(headers or ()).get(name)
        return value.decode("utf-8", "replace") if value is not None else None

    formats, signatures = _wanted_headers(lists)
    assert formats.to_pylist() == [alone(h, FORMAT_HEADER) for h in lists]
    assert signatures.to_pylist() == [alone(h, SIGNATURE_HEADER) for h in lists]


def test_a_consumer_whose_close_blocks_is_left_and_the_source_goes_on(caplog):
    """librdkafka's close can block for good (confluent-kafka-python#1667): the source waits
    its timeout for it, then goes on without it."""
    from pipelines.confluent_source import ConfluentSource

    caplog.set_level(logging.WARNING, logger="rda.kafka")
    source = ConfluentSource("127.0.0.1:9", timeout_s=0.2)
    released = threading.Event()

    class BlockingClose:  # the one behaviour of a stuck consumer that matters here
        def close(self) -> None:
            released.wait(30)

    source._clients = {"reader": BlockingClose()}
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 5
    assert source._clients == {}
    assert "a Kafka consumer did not close within 0.2 s: left" in caplog.text
    released.set()


def test_a_read_the_broker_answers_with_nothing_within_its_fetch_wait_asks_with_a_longer_one(
    broker, topic, publish, caplog
):
    """Tansu answers a fetch whose storage read outlasts fetch.wait.max.ms with no records, for
    good (at 0 ms, every time; at 1 ms, a broker on S3-compatible storage on a slow machine):
    the reader asks again with the next wait, and keeps it for a stretch of reads."""
    from pipelines.confluent_source import ConfluentSource

    caplog.set_level(logging.WARNING, logger="rda.kafka")
    publish(broker, topic, nodes=8, duration_s=10)
    partition, end = _longest_partition(broker, topic)
    source = ConfluentSource(broker.bootstrap, timeout_s=10, fetch_waits_ms=(0, 10))
    batch = source.read(OffsetRange(topic, partition, 0, end))
    assert batch.column("offset").to_pylist() == list(range(end))
    assert f"within 0 ms fetches at offset 0 of {topic}" in caplog.text
    assert "asking with 10 ms for now" in caplog.text
    caplog.clear()
    again = source.read(OffsetRange(topic, partition, 2, end))  # the longer wait is kept
    assert again.column("offset").to_pylist() == list(range(2, end))
    assert caplog.text == ""
    source.close()


def test_a_shorter_fetch_wait_is_tried_again_after_a_stretch_of_reads_then_twice_as_late(
    broker, topic, publish, caplog
):
    """One slow answer does not make every later read wait longer: after ``shorter_again_after``
    whole reads the shorter wait is tried again (0 ms: Tansu never answers it with records)."""
    from pipelines.confluent_source import ConfluentSource

    caplog.set_level(logging.INFO, logger="rda.kafka")
    publish(broker, topic, nodes=8, duration_s=10)
    partition, end = _longest_partition(broker, topic)
    source = ConfluentSource(
        broker.bootstrap, timeout_s=10, fetch_waits_ms=(0, 10), shorter_again_after=2
    )

    def read_all(times: int) -> None:
        for _ in range(times):
            batch = source.read(OffsetRange(topic, partition, 0, end))
            assert batch.column("offset").to_pylist() == list(range(end))

    read_all(2)  # the first asks longer; after the second, 0 ms is tried again
    assert caplog.text.count("asking with 10 ms for now") == 1
    assert caplog.text.count("with 0 ms fetches again") == 1
    read_all(1)  # 0 ms gets nothing again: 10 ms, now for twice as many reads
    assert caplog.text.count("asking with 10 ms for now") == 2
    read_all(2)  # 3 whole reads at 10 ms since (the one that asked longer counts)
    assert caplog.text.count("with 0 ms fetches again") == 1
    read_all(1)  # the 4th
    assert caplog.text.count("with 0 ms fetches again") == 2
    assert caplog.text.count("asking with 10 ms for now") == 2
    source.close()


def test_a_reader_that_gets_nothing_with_its_longest_wait_gives_up_after_its_timeout(
    broker, topic, publish
):
    from pipelines.confluent_source import ConfluentSource

    publish(broker, topic, nodes=8, duration_s=10)
    partition, end = _longest_partition(broker, topic)
    source = ConfluentSource(broker.bootstrap, timeout_s=2, fetch_waits_ms=(0,))
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match=f"no progress reading {topic}-p"):
        source.read(OffsetRange(topic, partition, 0, end))
    assert time.monotonic() - started < 10


def _longest_partition(broker, topic: str) -> tuple[int, int]:
    """The partition holding the most records, and its end (read with the default waits)."""
    source = open_source(broker.bootstrap, client="confluent")
    try:
        return max(source.high_watermarks(topic).items(), key=lambda item: item[1])
    finally:
        source.close()
