"""Consumer-group membership on confluent-kafka (the default client).

See ``pipelines/kafka_group.py`` for what a member does and why its partitions stay paused.
librdkafka heartbeats on its own thread; ``poll`` serves the rebalance callbacks, in which the
assignment is taken over (eager protocol: the whole assignment is revoked, then a new one given)
and paused before any fetch could start on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipelines.kafka_group import (
    MAX_POLL_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    GroupMember,
    heartbeat_interval_ms,
)
from pipelines.kafka_source import KafkaUnavailable


class ConfluentMember(GroupMember):
    """One process's membership of ``group`` for ``topics``."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Any,
        timeout_s: float = 30.0,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
    ) -> None:
        from confluent_kafka import Consumer, KafkaException

        self.group = group
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        try:
            self._consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": group,
                    "client.id": "rda-pipeline-member",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "session.timeout.ms": session_timeout_ms,
                    "heartbeat.interval.ms": heartbeat_interval_ms(session_timeout_ms),
                    "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
                    "partition.assignment.strategy": "roundrobin,range",
                    "socket.timeout.ms": max(int(timeout_s * 1000), 1000),
                    "log_level": 0,
                }
            )
            self._consumer.subscribe(
                list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke
            )
        except KafkaException as error:
            raise KafkaUnavailable(f"no Kafka broker answers at {bootstrap}") from error

    def poll(self, timeout_ms: int = 0) -> None:
        with self._answered("keeping group membership"):
            message = self._consumer.poll(timeout_ms / 1000)
        if message is not None and message.error() is not None and message.error().fatal():
            raise KafkaUnavailable(f"keeping group membership: {message.error()}")

    def commit(self, topic: str, offsets: dict[int, int]) -> None:
        from confluent_kafka import TopicPartition

        positions = [TopicPartition(topic, p, o) for p, o in offsets.items()]
        with self._answered(f"committing offsets of {self.group}"):
            results = self._consumer.commit(offsets=positions, asynchronous=False)
        failed = [tp for tp in results or () if tp.error is not None]
        if failed:
            raise KafkaUnavailable(f"committing offsets of {self.group}: {failed[0].error}")

    def close(self) -> None:
        self._consumer.close()  # sends LeaveGroup: the partitions move at once

    @contextmanager
    def _answered(self, what: str) -> Iterator[None]:
        from confluent_kafka import KafkaException

        try:
            yield
        except KafkaException as error:
            raise KafkaUnavailable(f"{what}: {error}") from error

    def _on_assign(self, consumer: Any, assigned: list) -> None:
        consumer.assign(assigned)
        if assigned:
            consumer.pause(assigned)
        self._set_owned((tp.topic, tp.partition) for tp in assigned)

    def _on_revoke(self, consumer: Any, revoked: list) -> None:
        self._set_owned(())
        consumer.unassign()
