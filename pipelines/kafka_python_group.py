"""Consumer-group membership on kafka-python (``--kafka-client kafka-python``).

See ``pipelines/kafka_group.py`` for what a member does and why its partitions stay paused.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

from kafka import ConsumerRebalanceListener

from pipelines.kafka_group import (
    MAX_POLL_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    GroupMember,
    heartbeat_interval_ms,
)
from pipelines.kafka_source import KafkaUnavailable


class KafkaPythonMember(GroupMember):
    """One process's membership of ``group`` for ``topics``."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Iterable[str],
        timeout_s: float = 30.0,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS,
    ) -> None:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        from kafka.errors import KafkaError

        self.group = group
        self.timeout_ms = int(timeout_s * 1000)
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group,
                client_id="rda-pipeline-member",
                enable_auto_commit=False,
                # Short sessions: a killed worker's partitions move within ~10 s, not 45.
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=heartbeat_interval_ms(session_timeout_ms),
                # A batch may hold the worker for minutes between two polls.
                max_poll_interval_ms=max_poll_interval_ms,
                partition_assignment_strategy=(
                    RoundRobinPartitionAssignor,
                    RangePartitionAssignor,
                ),
                request_timeout_ms=max(self.timeout_ms, session_timeout_ms) + 5000,
                bootstrap_timeout_ms=self.timeout_ms,
            )
        except KafkaError as error:
            raise KafkaUnavailable(f"no Kafka broker answers at {bootstrap}") from error
        self._consumer.subscribe(list(topics), listener=_PauseAssigned(self))

    # -- membership -----------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> None:
        """Heartbeat and take part in any rebalance; records are never fetched (all paused)."""
        with self._answered("keeping group membership"):
            self._consumer.poll(timeout_ms=timeout_ms, max_records=1)

    def commit(self, topic: str, offsets: dict[int, int]) -> None:
        """Commit ``{partition: next offset}`` with this member's generation."""
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        positions = {
            TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()
        }
        with self._answered(f"committing offsets of {self.group}"):
            self._consumer.commit(positions, timeout_ms=self.timeout_ms)

    def close(self) -> None:
        """Leave the group at once, so the partitions move without waiting for a timeout."""
        self._consumer.close(autocommit=False)

    @contextmanager
    def _answered(self, what: str):
        from kafka.errors import KafkaError

        try:
            yield
        except KafkaError as error:
            raise KafkaUnavailable(f"{what}: {type(error).__name__}: {error}") from error

    def _assigned(self, assigned: set) -> None:
        self._consumer.pause(*assigned)
        self._set_owned((tp.topic, tp.partition) for tp in assigned)


class _PauseAssigned(ConsumerRebalanceListener):
    """Pause what the group assigns, before any fetch could start on it."""

    def __init__(self, member: KafkaPythonMember) -> None:
        self.member = member

    def on_partitions_revoked(self, revoked) -> None:
        self.member._set_owned(())

    def on_partitions_assigned(self, assigned) -> None:
        self.member._assigned(set(assigned))
