"""The ceiling: a bare consume loop that reads every record and decodes nothing.

Run by the benchmarks as its own process, like the other peers: in the bench's own process the
same loop ran ~1.7× slower (confluent-kafka: 2.2 against 1.3 s over 221,567 records), its
allocations paying the garbage collector's passes over every object the bench had imported.
Prints one JSON line: records, seconds (from the consumer, once made, to the last record).

    python raw_loop.py confluent|kafka-python BOOTSTRAP TOPIC GROUP COUNT

``confluent``: confluent-kafka, every partition assigned from offset 0 (no group join to wait
for); ``kafka-python``: a ``KafkaConsumer`` without a group, polling up to 10,000 records.
"""

import json
import sys
import time

# How long each loop reads before it gives up, as in the benchmarks' in-process loops before.
CONFLUENT_DEADLINE_S, KAFKA_PYTHON_DEADLINE_S = 300, 120


def confluent(bootstrap: str, topic: str, group: str, count: int) -> tuple[int, float]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    started = time.perf_counter()
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        seen, deadline = 0, time.monotonic() + CONFLUENT_DEADLINE_S
        while seen < count and time.monotonic() < deadline:
            seen += sum(1 for m in consumer.consume(10_000, timeout=1.0) if m.error() is None)
        return seen, time.perf_counter() - started
    finally:
        consumer.close()


def kafka_python(bootstrap: str, topic: str, _group: str, count: int) -> tuple[int, float]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    started = time.perf_counter()
    try:
        seen, deadline = 0, time.monotonic() + KAFKA_PYTHON_DEADLINE_S
        while seen < count and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500, max_records=10_000)
            seen += sum(len(records) for records in polled.values())
        return seen, time.perf_counter() - started
    finally:
        consumer.close()


def main() -> None:
    client, bootstrap, topic, group = sys.argv[1:5]
    count = int(sys.argv[5])
    loop = {"confluent": confluent, "kafka-python": kafka_python}[client]
    seen, seconds = loop(bootstrap, topic, group, count)
    if seen < count:
        raise SystemExit(f"the raw loop read {seen} of {count} records")
    print(json.dumps({"records": seen, "seconds": seconds}))


if __name__ == "__main__":
    main()
