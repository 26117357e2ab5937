"""A work item is bounded in bytes as well as in offsets: its records' keys and values.

Kafka offsets say nothing of bytes and a record may be a megabyte, so 50,000 offsets could hold
tens of gigabytes. A reader counts a range's records against ``max_range_bytes``; once past it,
it keeps none and reads on only to mark where parts within the budget start, then raises
``RangeTooLarge`` with those offsets. The driver splits that work item there in the journaled
plan and lands the parts. What is published is what an unbounded landing publishes.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.kafka_source import CLIENTS, OffsetRange, RangeTooLarge, ReadBudget, open_source
from simulator.fleet import generate
from simulator.messages import Message
from simulator.producer import produce
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch
from streaming.journal import BatchJournal

START_MS = 1_764_000_000_000
RANGE = OffsetRange("t", 3, 100, 110)


def splits(max_bytes: int, *rounds: list[int]) -> list[int]:
    """The splits of RANGE whose records, read in ``rounds``, have those sizes."""
    budget, offset = ReadBudget(max_bytes), RANGE.start
    for sizes in rounds:
        budget.count(RANGE, sizes, list(range(offset, offset + len(sizes))))
        offset += len(sizes)
    try:
        budget.refuse_over([RANGE])
    except RangeTooLarge as error:
        assert (error.offsets, error.max_bytes) == (RANGE, max_bytes)
        return error.splits
    return []


def test_records_within_the_budget_are_read_whole():
    assert splits(1_000, [400, 400], [200]) == []


def test_each_part_starts_where_the_records_before_it_would_pass_the_budget():
    assert splits(1_000, [400, 400], [150, 51, 10], [990, 10]) == [103, 105]
    assert splits(1_000, [400, 400], [150, 51, 10], [990, 11]) == [103, 105, 106]


def test_a_record_alone_over_the_budget_is_a_part_of_its_own():
    assert splits(1_000, [5_000, 10]) == [101]
    assert splits(1_000, [10, 5_000, 10]) == [101, 102]


def test_a_range_of_one_record_over_the_budget_is_read_it_cannot_be_split():
    budget = ReadBudget(1_000)
    one = OffsetRange("t", 3, 100, 101)
    assert budget.count(one, [5_000], [100]) is False
    budget.refuse_over([one])


def test_once_over_the_budget_the_reader_is_told_to_keep_nothing():
    budget = ReadBudget(1_000)
    assert budget.count(RANGE, [600], [100]) is False
    assert budget.count(RANGE, [600], [101]) is True
    assert budget.count(RANGE, [1], [102]) is True


def test_no_budget_reads_anything():
    budget = ReadBudget(None)
    assert budget.count(RANGE, [1 << 40], [100]) is False
    budget.refuse_over([RANGE])


def test_each_range_has_a_budget_of_its_own():
    budget = ReadBudget(1_000)
    budget.count(RANGE, [900], [100])
    budget.count(OffsetRange("t", 4, 0, 10), [900], [0])
    budget.refuse_over([RANGE, OffsetRange("t", 4, 0, 10)])


def test_the_error_travels_whole_through_pickling_and_beam_s_re_raising():
    error = RangeTooLarge("over", RANGE.as_dict(), [105, 107], 1_000)
    again = type(error)(error.args[0] + " [while running 'ReadAndStandardize']", *error.args[1:])
    for copy in (pickle.loads(pickle.dumps(error)), again):
        assert (copy.offsets, copy.splits, copy.max_bytes) == (RANGE, [105, 107], 1_000)


@given(
    sizes=st.lists(st.integers(0, 3_000), min_size=1, max_size=40),
    max_bytes=st.integers(1, 5_000),
    rounds=st.integers(1, 4),
)
def test_every_part_is_within_the_budget_or_one_record(sizes, max_bytes, rounds):
    step = max(1, len(sizes) // rounds)
    offsets = OffsetRange("t", 0, 0, len(sizes))
    budget = ReadBudget(max_bytes)
    for first in range(0, len(sizes), step):
        part = sizes[first : first + step]
        budget.count(offsets, part, list(range(first, first + len(part))))
    found = budget.splits.get(offsets, [])
    bounds = [0, *found, len(sizes)]
    for a, b in pairwise(bounds):
        assert b > a
        assert sum(sizes[a:b]) <= max_bytes or b - a == 1
        if b < len(sizes):  # a part ends only where the next record would pass the budget
            assert sum(sizes[a : b + 1]) > max_bytes


def test_the_offsets_are_listed_only_when_a_part_ends_among_the_records():
    listed = []

    def offsets() -> list[int]:
        listed.append(True)
        return [100, 101]

    budget = ReadBudget(1_000)
    assert budget.count(RANGE, [400, 500], offsets) is False  # 900 bytes: no part ends
    assert listed == []
    assert budget.count(RANGE, [400, 500], offsets) is True
    assert (listed, budget.splits[RANGE]) == ([True], [100])  # 900, then 400 + 500


def test_the_confluent_reader_counts_keys_values_and_headers_as_the_budget_says(broker, topic):
    """``record_sizes``, the confluent reader's count of every record it lands, is
    ``ReadBudget``'s measure: key, value, each header's name and value; an absent one is 0."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from pipelines.confluent_records import record_sizes
    from simulator.producer import ensure_topic

    ensure_topic(broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for key, value, headers in [
        (None, b"v" * 7, None),
        (b"key", b"", [("a", None), ("bb", b"xyz")]),
        (b"k", None, [("h", b"1"), ("h", b"22")]),
    ]:
        producer.produce(topic, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "sizes"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages = []
    for _ in range(40):  # up to ~20 s
        messages += [m for m in consumer.consume(3, timeout=0.5) if m.error() is None]
        if len(messages) >= 3:
            break
    consumer.close()
    assert record_sizes(messages) == [7, 3 + 1 + 2 + 3, 1 + 2 + 3]


def padded(messages: list[Message], pad: int) -> list[Message]:
    """The fleet's JSON records with a member of ``pad`` bytes no schema reads."""
    out = []
    for m in messages:
        if m.value.startswith(b"{"):
            document = json.loads(m.value)
            m = replace(m, value=json.dumps({**document, "pad": "x" * pad}).encode())
        out.append(m)
    return out


@pytest.mark.parametrize("client", CLIENTS)
def test_a_reader_stops_a_range_at_its_byte_budget_on_the_broker(broker, topic, client):
    produce(broker.bootstrap, topic, [Message(b"k", b"v" * 10_000, START_MS)] * 8, partitions=1)
    whole = OffsetRange(topic, 0, 0, 8)
    bounded = open_source(broker.bootstrap, client=client, max_range_bytes=35_000)
    with pytest.raises(RangeTooLarge) as raised:
        bounded.read(whole)
    assert raised.value.splits == [3, 6]  # 3 records of 10,001 bytes fit, a fourth does not
    assert bounded.read(OffsetRange(topic, 0, 3, 6)).column("offset").to_pylist() == [3, 4, 5]
    assert open_source(broker.bootstrap, client=client).read(whole).num_rows == 8
    bounded.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_headers_count_as_a_records_bytes(broker, topic, client):
    """A record may carry its megabyte in a header and nothing in its value."""
    record = Message(b"k", b"", START_MS, headers=(("pad", b"h" * 10_000),))
    produce(broker.bootstrap, topic, [record] * 8, partitions=1)
    bounded = open_source(broker.bootstrap, client=client, max_range_bytes=35_000)
    with pytest.raises(RangeTooLarge) as raised:
        bounded.read(OffsetRange(topic, 0, 0, 8))
    assert raised.value.splits == [3, 6]
    bounded.close()


def test_a_work_item_over_its_byte_budget_is_split_and_publishes_what_a_whole_one_does(
    broker, topic, tmp_path
):
    messages = padded(list(generate(4, 20, 1.0, START_MS, 5, 0.0)), 2_000)
    produce(broker.bootstrap, topic, messages, partitions=1)
    source = open_source(broker.bootstrap)
    summaries, roots = {}, {}
    for name, max_bytes in (("whole", 1 << 30), ("split", 50_000)):
        data = tmp_path / name
        config = RunConfig(broker.bootstrap, topic, f"g-{name}", data, max_chunk_bytes=max_bytes)
        chain = open_chain("embedded", None, None)  # a registry for each data directory
        summaries[name] = run_batch(config, source, chain.anchor)
        roots[name] = {c["dataset"]: c["root"] for c in summaries[name].checkpoints}
        with BatchJournal(DataLayout(data).journal, read_only=True) as journal:
            plan = journal.batch(summaries[name].batch_id)["plan"]
        summaries[name] = (summaries[name], [OffsetRange(**c) for c in plan["chunks"]])

    (whole, whole_chunks), (split, split_chunks) = summaries["whole"], summaries["split"]
    assert whole_chunks == [OffsetRange(topic, 0, 0, len(messages))]
    assert len(split_chunks) > len(messages) * 2_000 // 50_000
    with BatchJournal(DataLayout(tmp_path / "split").journal, read_only=True) as journal:
        assert journal.batch(split.batch_id)["state"] == "done"
    assert [c.start for c in split_chunks] == sorted({c.start for c in split_chunks})
    assert (split_chunks[0].start, split_chunks[-1].end) == (0, len(messages))
    assert all(a.end == b.start for a, b in pairwise(split_chunks))
    assert (split.read, split.published, split.quarantined, split.suppressed) == (
        whole.read,
        whole.published,
        whole.quarantined,
        whole.suppressed,
    )
    assert split.read == len(messages)
    assert roots["split"] == roots["whole"]
    source.close()
