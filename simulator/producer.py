"""Publishing simulated telemetry to a Kafka topic (``rda simulate``)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from simulator.messages import FORMAT_HEADER, Message


@dataclass
class ProduceReport:
    topic: str
    partitions: int
    messages: int = 0
    bytes: int = 0
    defects: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "topic": self.topic,
            "partitions": self.partitions,
            "messages": self.messages,
            "bytes": self.bytes,
            "defects": dict(sorted(self.defects.items())),
            "seconds": round(self.seconds, 3),
        }


def at_event_time(message: Message) -> None:
    """A ``produce`` pace: wait until the wall clock reaches the message's event time, so a
    fleet generated with future timestamps is sent as it would happen."""
    time.sleep(max(0.0, message.timestamp_ms / 1000 - time.time()))


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> int:
    """Create ``topic`` unless it exists; return its partition count."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rda-admin")
    try:
        if topic not in admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile
                admin.create_topics([NewTopic(topic, partitions, 1)])
        described = admin.describe_topics([topic])
        return len(described[0]["partitions"])
    finally:
        admin.close()


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[Message],
    partitions: int = 4,
    pace: Callable[[Message], None] | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> ProduceReport:
    """Send ``messages`` keyed by node id with acks=all; return what was sent."""
    from kafka import KafkaProducer

    report = ProduceReport(topic=topic, partitions=ensure_topic(bootstrap, topic, partitions))
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type="zstd",
        client_id="rda-simulator",
    )
    started = time.monotonic()
    try:
        for message in messages:
            if pace is not None:
                pace(message)
            producer.send(
                topic,
                key=message.key,
                value=message.value,
                headers=[(FORMAT_HEADER, message.wire_format.encode()), *message.headers],
                timestamp_ms=message.timestamp_ms,
            )
            report.messages += 1
            report.bytes += len(message.value)
            if message.defect:
                report.defects[message.defect] += 1
            if on_sent is not None and report.messages % 1000 == 0:
                on_sent(report.messages)
        producer.flush()
    finally:
        producer.close()
    report.seconds = time.monotonic() - started
    return report
