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

from pipelines.kafka_source import DEFAULT_CLIENT

log = logging.getLogger("rda.run.group")  # printed with the run's own lines

SESSION_TIMEOUT_MS = 10_000  # a killed worker's partitions move within ~10 s, not 45
MIN_SESSION_TIMEOUT_MS = 1_000  # heartbeats at most every 0.5 s: two fit in the shortest
MAX_POLL_INTERVAL_MS = 600_000  # a batch may hold the worker for minutes between two polls


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """Every sixth of the session (a few heartbeats may be lost before it times out), but not
    more often than every 0.5 s: the broker answers each."""
    return max(session_timeout_ms // 6, 500)


class GroupMember:
    """What every client's member shares: the owned partitions and waiting for them."""

    group: str
    _owned: frozenset[tuple[str, int]] = frozenset()

    def poll(self, timeout_ms: int = 0) -> None:
        """Heartbeat and take part in any rebalance; records are never fetched (all paused)."""
        raise NotImplementedError

    def commit(self, topic: str, offsets: dict[int, int]) -> None:
        """Commit ``{partition: next offset}`` with this member's generation."""
        raise NotImplementedError

    def close(self) -> None:
        """Leave the group at once, so the partitions move without waiting for a timeout."""
        raise NotImplementedError

    def partitions(self, topic: str) -> set[int]:
        """The partitions of ``topic`` this member owns; none while the group rebalances."""
        return {p for t, p in self._owned if t == topic}

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

    def _set_owned(self, owned: Iterable[tuple[str, int]]) -> None:
        """The group's latest assignment to this member (empty: revoked, rebalancing)."""
        self._owned = frozenset(owned)
        if not self._owned:
            return
        log.info(
            "group %s assigned %s",
            self.group,
            ", ".join(f"{t}/{p}" for t, p in sorted(self._owned)),
            extra={"event": "assignment", "partitions": sorted(self._owned)},
        )


def join_group(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    timeout_s: float = 30.0,
    client: str = DEFAULT_CLIENT,
    session_timeout_ms: int = SESSION_TIMEOUT_MS,
) -> GroupMember:
    """Join ``group`` for ``topics`` with the named client (``pipelines.kafka_source.CLIENTS``)."""
    if client == "confluent":
        from pipelines.confluent_group import ConfluentMember

        return ConfluentMember(bootstrap, group, topics, timeout_s, session_timeout_ms)
    if client == "kafka-python":
        from pipelines.kafka_python_group import KafkaPythonMember

        return KafkaPythonMember(bootstrap, group, topics, timeout_s, session_timeout_ms)
    raise ValueError(f"unknown Kafka client {client!r}")
