"""Membership in a Kafka consumer group: which partitions this process owns right now.

``rda run --join-group`` workers split a topic's partitions through the group protocol, and the
group moves a dead worker's partitions to the survivors (after its session times out) or a
leaving worker's at once. The member never fetches records itself — batches read their exact
offset ranges through ``KafkaSource.read`` — so every assigned partition is paused and ``poll``
only keeps the membership alive and takes part in rebalances. Offsets are committed through
the member, with its generation, so a commit from a worker that has lost the group is refused
instead of silently moving another worker's position.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import contextmanager

from kafka import ConsumerRebalanceListener

from pipelines.kafka_source import KafkaUnavailable

log = logging.getLogger("rda.run.group")  # printed with the run's own lines


class GroupMember:
    """One process's membership of ``group`` for ``topics``."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Iterable[str],
        timeout_s: float = 30.0,
        session_timeout_ms: int = 10_000,
        max_poll_interval_ms: int = 600_000,
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
                heartbeat_interval_ms=max(session_timeout_ms // 6, 500),
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
        self._owned: frozenset[tuple[str, int]] = frozenset()

    # -- membership -----------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> None:
        """Heartbeat and take part in any rebalance; records are never fetched (all paused)."""
        with self._answered("keeping group membership"):
            self._consumer.poll(timeout_ms=timeout_ms, max_records=1)

    def wait_for_assignment(self, timeout_s: float, settle_s: float = 0.0) -> bool:
        """Poll until the group has assigned this member something that held for ``settle_s``.

        Workers started together join one by one; settling lets the group finish the joins
        before the first member plans a batch over every partition (Kafka brokers delay the
        first rebalance for the same reason, ``group.initial.rebalance.delay.ms``).
        """
        deadline = time.monotonic() + timeout_s
        stable_since, seen = time.monotonic(), self._owned
        while time.monotonic() < deadline:
            self.poll(timeout_ms=200)
            if self._owned != seen:
                stable_since, seen = time.monotonic(), self._owned
            if self._owned and time.monotonic() - stable_since >= settle_s:
                return True
        return bool(self._owned)

    def partitions(self, topic: str) -> set[int]:
        """The partitions of ``topic`` this member owns; none while the group rebalances."""
        return {p for t, p in self._owned if t == topic}

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
        self._owned = frozenset((tp.topic, tp.partition) for tp in assigned)
        log.info(
            "group %s assigned %s",
            self.group,
            ", ".join(f"{t}/{p}" for t, p in sorted(self._owned)) or "nothing",
            extra={"event": "assignment", "partitions": sorted(self._owned)},
        )


class _PauseAssigned(ConsumerRebalanceListener):
    """Pause what the group assigns, before any fetch could start on it."""

    def __init__(self, member: GroupMember) -> None:
        self.member = member

    def on_partitions_revoked(self, revoked) -> None:
        self.member._owned = frozenset()

    def on_partitions_assigned(self, assigned) -> None:
        self.member._assigned(set(assigned))
