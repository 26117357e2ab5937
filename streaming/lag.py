"""A consumer-lag gauge that stays true: measured on a timer, and again whenever the loop asks.

Measured only after a batch, the gauge kept whatever it last saw: records produced while the
run was idle never showed, and a drained topic could keep a stale lag. A background thread
asks the broker every ``interval`` seconds (high watermark minus the group's committed offset,
per partition), and at once after each batch and each round that found nothing new. A broker
that does not answer leaves the last values (the retry metrics say why).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from pipelines.kafka_source import DEFAULT_CLIENT, KafkaSource, open_source
from streaming.metrics import RunMetrics

log = logging.getLogger("rda.run")


def consumer_lag(source: KafkaSource, group: str, topic: str) -> dict[int, int]:
    """Per partition: high watermark minus the group's committed offset."""
    ends = source.high_watermarks(topic)
    committed = source.committed(group, topic)
    return {p: ends[p] - committed.get(p, 0) for p in ends}


class LagWatcher:
    """Refreshes ``rda_consumer_lag`` every ``interval`` seconds and on ``refresh()``."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Iterable[str],
        metrics: RunMetrics,
        interval: float,
        timeout_s: float = 10.0,
        client: str = DEFAULT_CLIENT,
    ) -> None:
        self.source = open_source(bootstrap, timeout_s, client)
        self.group, self.topics, self.metrics = group, list(topics), metrics
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag", daemon=True)

    def __enter__(self) -> LagWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=15)
        self.source.close()

    def refresh(self) -> None:
        """Measure again now (after a batch committed its offsets, or a drain)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.measure()
            self._wake.wait(self.interval)
            self._wake.clear()

    def measure(self) -> None:
        for topic in self.topics:
            if self._stop.is_set():
                return
            try:
                self.metrics.set_lag(topic, consumer_lag(self.source, self.group, topic))
            except Exception as error:  # an outage or a topic not yet created: keep the last
                log.debug("lag of %s not measured: %s", topic, error)
