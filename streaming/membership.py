"""``rda run --join-group``: the run as a member of its Kafka consumer group.

The group's coordinator assigns each member its partitions; a member lands and commits only
those (``owned``, ``commit``), keeps its place by polling between batches and while it waits
for the next trigger (``keep``, ``idle``), and leaves at once when the run stops, so that its
partitions move to the others without waiting for a session timeout. The group client:
``pipelines/kafka_group.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipelines.kafka_source import KafkaUnavailable
from streaming.config import RunSettings
from streaming.metrics import RunMetrics
from streaming.retry import Backoff

# A member's poll must last a moment: with zero-timeout polls only, Tansu's group joins never
# settled (every member was elected leader in turn); 100 ms per round is enough.
MEMBER_POLL_MS = 100
JOIN_SETTLE_S = 3.0  # at start, an assignment must hold this long: workers started together


class Membership:
    """The run's place in its consumer group: none until ``joined`` (only with --join-group)."""

    def __init__(
        self,
        settings: RunSettings,
        bootstrap: str,
        backoff: Backoff,
        stop: threading.Event,
        metrics: RunMetrics,
        log: logging.Logger,
    ) -> None:
        self.settings, self.bootstrap = settings, bootstrap
        self.backoff, self.stop, self.metrics, self.log = backoff, stop, metrics, log
        self.member: Any = None  # a pipelines.kafka_group.GroupMember once joined

    @contextmanager
    def joined(self) -> Iterator[None]:
        """A member of the group, its first assignment settled, for as long as this lasts."""
        from pipelines.kafka_group import join_group

        join = lambda: join_group(  # noqa: E731
            self.bootstrap,
            self.settings.group,
            self.settings.topics,
            self.settings.kafka_timeout,
            self.settings.kafka_client,
            round(self.settings.group_session_timeout * 1000),
        )
        self.member = self.backoff.call(f"joining group {self.settings.group}", join, self.stop)
        try:
            if self.member is not None:
                settle = lambda: self.member.wait_for_assignment(30, JOIN_SETTLE_S)  # noqa: E731
                self.backoff.call("waiting for the group's assignment", settle, self.stop)
            yield
        finally:
            if self.member is not None:
                self.member.close()  # leave at once: the partitions move without a timeout

    def keep(self, timeout_ms: int = MEMBER_POLL_MS) -> None:
        """Poll the group (a rebalance goes on meanwhile); the partitions owned, as metrics."""
        if self.member is not None:
            poll = lambda: self.member.poll(timeout_ms)  # noqa: E731
            self.backoff.call("keeping group membership", poll, self.stop)
            for topic in self.settings.topics:
                self.metrics.owned.labels(topic).set(len(self.member.partitions(topic)))

    def idle(self, seconds: float) -> None:
        """Wait for the next trigger; a member keeps polling, so rebalances go on."""
        if self.member is None:
            self.stop.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.keep()

    def owned(self, topic: str) -> set[int]:
        return self.member.partitions(topic) if self.member is not None else set()

    def commit(self, topic: str, offsets: dict[int, int]) -> bool:
        """Commit with the member's generation; after a rebalance, leave it for a later round."""
        try:
            if not self.member.partitions(topic):
                return False  # rebalancing: a commit now would fail and restart the rebalance
            self.member.commit(topic, offsets)
        except KafkaUnavailable as error:
            self.log.warning("offsets of %s not committed now (%s); retried later", topic, error)
            return False
        return True
