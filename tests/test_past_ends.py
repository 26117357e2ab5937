"""Records a read consumed past a range's end, kept for the read that starts there
(``pipelines/past_ends.py``), against the real broker: a stream's batches read each partition's
ranges back to back, and what they read must be exactly what reading each range alone gives."""

from __future__ import annotations

import itertools

import pytest
from confluent_kafka import Consumer, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.confluent_source import ConfluentSource
from pipelines.kafka_source import KafkaUnavailable, OffsetRange
from pipelines.past_ends import PAST_ENDS, PastEnds
from streaming.isolation import run_isolated


@pytest.fixture
def ends(broker, topic, publish) -> dict[int, int]:
    """The topic's four partitions, published to: partition -> high watermark."""
    publish(broker, topic, nodes=8, duration_s=40)
    source = ConfluentSource(broker.bootstrap)
    found = source.high_watermarks(topic)
    source.close()
    PAST_ENDS.clear()
    return found


def _messages(broker, topic: str, partition: int, start: int, count: int) -> list:
    """``count`` messages of the partition from ``start``, consumed as a read consumes them."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "rda-test"})
    consumer.assign([TopicPartition(topic, partition, start)])
    found: list = []
    for _ in range(50):
        found += consumer.consume(num_messages=count - len(found), timeout=0.2)
        if len(found) >= count:
            break
    consumer.close()
    assert [m.offset() for m in found] == list(range(start, start + count))
    return found


def _keep_five_past_ten(past_ends: PastEnds, broker, topic: str) -> None:
    """Partition 0's offsets 10-14 kept as if a read of [0, 10) had consumed them."""
    past_ends.keep(
        broker.bootstrap, OffsetRange(topic, 0, 0, 10), _messages(broker, topic, 0, 10, 5)
    )


def _offsets(messages: list) -> list[int]:
    return [message.offset() for message in messages]


def _size(messages: list) -> int:
    return sum(len(m.key() or b"") + len(m.value() or b"") for m in messages)


def test_a_read_keeps_the_records_it_consumed_past_its_ranges_ends(broker, topic, ends):
    source = ConfluentSource(broker.bootstrap)
    source.read_many([OffsetRange(topic, p, 0, 10) for p in sorted(ends)])
    source.close()
    kept = {}
    for p in sorted(ends):
        kept[p], position = PAST_ENDS.take(broker.bootstrap, OffsetRange(topic, p, 10, ends[p]))
        assert _offsets(kept[p]) == list(range(10, position))
    assert sum(map(len, kept.values())) > 0  # a fetch brings more than 10 records a partition


def test_a_range_read_whole_from_kept_records_leaves_the_rest_for_the_range_after_it(
    broker, topic, ends
):
    source = ConfluentSource(broker.bootstrap)
    source.read_many([OffsetRange(topic, p, 0, 10) for p in sorted(ends)])
    kept = {p: PAST_ENDS.take(broker.bootstrap, OffsetRange(topic, p, 10, 10**9))[0] for p in ends}
    partition = max(kept, key=lambda p: len(kept[p]))  # then kept again, from 10
    assert len(kept[partition]) > 3
    PAST_ENDS.keep(broker.bootstrap, OffsetRange(topic, partition, 0, 10), kept[partition])
    batch = source.read(OffsetRange(topic, partition, 10, 12))  # no fetch: both are kept
    assert batch.column("offset").to_pylist() == [10, 11]
    rest, _ = PAST_ENDS.take(broker.bootstrap, OffsetRange(topic, partition, 12, ends[partition]))
    assert _offsets(rest) == _offsets(kept[partition])[2:]
    source.close()


def test_ranges_read_back_to_back_are_each_what_reading_it_alone_gives(broker, topic, ends):
    fresh = ConfluentSource(broker.bootstrap)
    whole = {p: fresh.read(OffsetRange(topic, p, 0, end)).to_pylist() for p, end in ends.items()}
    fresh.close()
    shortest = min(ends.values())

    @settings(max_examples=20)
    @given(st.lists(st.integers(1, shortest - 1), max_size=5).map(lambda c: sorted(set(c))))
    def back_to_back(cuts: list[int]) -> None:
        PAST_ENDS.clear()
        read: dict[int, list] = {p: [] for p in ends}
        for start, stop in itertools.pairwise([0, *cuts, None]):
            source = ConfluentSource(broker.bootstrap)  # one a batch, as a landing pipeline
            ranges = [OffsetRange(topic, p, start, stop or end) for p, end in ends.items()]
            for r, batch in zip(ranges, source.read_many(ranges), strict=True):
                read[r.partition] += batch.to_pylist()
            source.close()
        assert read == whole

    back_to_back()


def test_a_read_starting_elsewhere_takes_nothing_kept_and_reads_its_own_offsets(
    broker, topic, ends
):
    past_ends = PastEnds()
    past_ends.keep(
        broker.bootstrap, OffsetRange(topic, 0, 0, 10), _messages(broker, topic, 0, 10, 5)
    )
    assert past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 12, 20)) == ([], 12)
    assert past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 10, 20)) == ([], 10)  # gone


def test_kept_records_older_than_the_age_bound_are_not_used(broker, topic, ends):
    now = [100.0]
    past_ends = PastEnds(max_age_s=10.0, clock=lambda: now[0])
    past_ends.keep(
        broker.bootstrap, OffsetRange(topic, 0, 0, 10), _messages(broker, topic, 0, 10, 5)
    )
    now[0] += 10.5
    assert past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 10, 20)) == ([], 10)


def test_records_over_the_byte_bound_are_not_kept_and_the_read_goes_on_after_the_last_kept(
    broker, topic, ends
):
    records = _messages(broker, topic, 0, 10, 8)
    past_ends = PastEnds(max_bytes=_size(records[:3]))
    past_ends.keep(broker.bootstrap, OffsetRange(topic, 0, 0, 10), records)
    assert past_ends.size == _size(records[:3])
    kept, position = past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 10, ends[0]))
    assert (_offsets(kept), position) == ([10, 11, 12], 13)


def test_the_oldest_partition_s_records_go_first_when_another_s_pass_the_byte_bound(
    broker, topic, ends
):
    now = [0.0]
    first, second = _messages(broker, topic, 0, 10, 4), _messages(broker, topic, 1, 10, 4)
    past_ends = PastEnds(max_bytes=max(_size(first), _size(second)), clock=lambda: now[0])
    past_ends.keep(broker.bootstrap, OffsetRange(topic, 0, 0, 10), first)
    now[0] += 1
    past_ends.keep(broker.bootstrap, OffsetRange(topic, 1, 0, 10), second)
    assert past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 10, 20)) == ([], 10)
    kept, _ = past_ends.take(broker.bootstrap, OffsetRange(topic, 1, 10, 20))
    assert _offsets(kept) == [10, 11, 12, 13]


def test_kept_records_past_the_next_range_s_end_stay_for_the_range_after_it(broker, topic, ends):
    records = _messages(broker, topic, 0, 10, 8)
    past_ends = PastEnds()
    past_ends.keep(broker.bootstrap, OffsetRange(topic, 0, 0, 10), records)
    taken, position = past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 10, 13))
    assert (_offsets(taken), position) == ([10, 11, 12], 13)
    rest, position = past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 13, ends[0]))
    assert (_offsets(rest), position) == (list(range(13, 18)), 18)


def test_records_out_of_offset_order_end_what_is_kept(broker, topic, ends):
    records = _messages(broker, topic, 0, 10, 6)
    past_ends = PastEnds()
    past_ends.keep(broker.bootstrap, OffsetRange(topic, 0, 0, 10), records[:3] + records[1:])
    kept, position = past_ends.take(broker.bootstrap, OffsetRange(topic, 0, 10, ends[0]))
    assert (_offsets(kept), position) == ([10, 11, 12], 13)


def test_a_failed_read_forgets_what_was_kept_of_its_broker(broker, topic, ends):
    PAST_ENDS.keep(
        broker.bootstrap, OffsetRange(topic, 0, 0, 10), _messages(broker, topic, 0, 10, 5)
    )
    source = ConfluentSource(broker.bootstrap, timeout_s=1.0, fetch_waits_ms=(50,))
    with pytest.raises(KafkaUnavailable):
        source.read(OffsetRange(topic, 99, 0, 5))  # no such partition: no progress
    assert PAST_ENDS.size == 0


def test_a_forked_child_starts_with_nothing_kept(broker, topic, ends):
    PAST_ENDS.keep(
        broker.bootstrap, OffsetRange(topic, 0, 0, 10), _messages(broker, topic, 0, 10, 5)
    )
    assert run_isolated(lambda: PAST_ENDS.size, "asking a child") == 0
    assert PAST_ENDS.size > 0
    PAST_ENDS.clear()
