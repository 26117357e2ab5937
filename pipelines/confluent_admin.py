"""What confluent-kafka's admin API tells of a topic that a consumer does not: its id, and
where each partition's log starts. A plan asks both every batch (``read_on_from``):
a topic deleted and recreated has another id, and retention moves a log's start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipelines.kafka_source import KafkaUnavailable, TopicNotFound, canonical_topic_id


class ConfluentAdmin:
    """One admin client of a broker, made on first use, until ``close``."""

    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self._client: Any = None

    def topic_id(self, topic: str) -> str | None:
        """The topic's id (a UUID string), None where the broker has none."""
        ident = self._described(topic).topic_id
        if ident is None:
            return None
        return canonical_topic_id(
            ident.get_most_significant_bits(), ident.get_least_significant_bits()
        )

    def log_starts(self, topic: str) -> dict[int, int]:
        """Each partition's log start offset (records before it were deleted), in one
        ListOffsets request."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        partitions = [p.id for p in self._described(topic).partitions]
        with self._answered(f"log starts of {topic}"):
            found = self._admin().list_offsets(
                {TopicPartition(topic, p): OffsetSpec.earliest() for p in partitions},
                request_timeout=self.timeout_s,
            )
            offsets = {tp.partition: f.result(timeout=self.timeout_s) for tp, f in found.items()}
        # An empty partition's start may come back as librdkafka's "no offset" (-1001).
        return {p: max(result.offset, 0) for p, result in offsets.items()}

    def close(self) -> None:
        """Drop the admin client: it has no close, and ends its threads once dropped (before
        a landing child is forked, no Kafka client may be running)."""
        self._client = None

    def _described(self, topic: str) -> Any:
        from confluent_kafka import KafkaError, KafkaException, TopicCollection

        with self._answered(f"describing {topic}"):
            found = self._admin().describe_topics(
                TopicCollection([topic]), request_timeout=self.timeout_s
            )[topic]
            try:
                return found.result(timeout=self.timeout_s)
            except KafkaException as error:
                if error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    message = f"topic {topic!r} does not exist on {self.bootstrap}"
                    raise TopicNotFound(message) from None
                raise

    def _admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        if self._client is None:
            self._client = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        return self._client

    @contextmanager
    def _answered(self, what: str) -> Iterator[None]:
        """librdkafka's errors become the one error the driver retries; after one, the next
        call starts on a new client."""
        from confluent_kafka import KafkaException

        try:
            yield
        except KafkaException as error:
            self._client = None
            raise KafkaUnavailable(f"{what}: no answer from {self.bootstrap} ({error})") from error
