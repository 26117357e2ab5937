"""Prometheus metrics of ``rda run``, served on 127.0.0.1 when ``--metrics-port`` is given."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streaming.batch import Anchorer, BatchSummary


class RunMetrics:
    """One registry per run, so tests and embedders never collide on the global one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.read = Counter("rda_records_read", "Kafka records read", ["topic"], registry=r)
        self.published = Counter(
            "rda_records_published", "Records published to datasets", ["topic"], registry=r
        )
        self.quarantined = Counter(
            "rda_records_quarantined", "Records quarantined", ["topic", "reason"], registry=r
        )
        self.suppressed = Counter(
            "rda_records_suppressed", "Records withheld for k-anonymity", ["topic"], registry=r
        )
        self._event_time_metrics(r)
        self.batches = Counter("rda_batches", "Micro-batches finished", ["topic"], registry=r)
        self.lost = Counter(
            "rda_records_lost",
            "Offsets retention deleted before they were read, skipped (--accept-retention-loss)",
            ["topic"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "rda_batch_duration_seconds",
            "Wall time of one micro-batch, plan to offsets committed",
            ["topic"],
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160),
            registry=r,
        )
        self.lag = Gauge(
            "rda_consumer_lag", "High watermark minus committed offset", ["topic", "partition"],
            registry=r,
        )  # fmt: skip
        self.anchor_seconds = Histogram(
            "rda_anchor_latency_seconds",
            "Time to anchor one batch's checkpoints (transactions sent and mined)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.step_seconds = Histogram(
            "rda_batch_step_seconds",
            "Wall time of one step of a batch (plan, land, sequence, and within sequence "
            "dedup, event_time, publish, anchor; offsets)",
            ["topic", "step"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.owned = Gauge(
            "rda_owned_partitions",
            "Partitions the consumer group assigns this worker (with --join-group)",
            ["topic"],
            registry=r,
        )
        self.gas = Counter("rda_anchor_gas", "Gas spent anchoring checkpoints", registry=r)
        self.checkpoints = Counter(
            "rda_checkpoints_anchored", "Checkpoints anchored", ["dataset"], registry=r
        )
        self._health(r)

    def _health(self, r: CollectorRegistry) -> None:
        """What tells an operator the run is healthy: failures, crashes, progress, backlog."""
        self.retries = Counter(
            "rda_retries", "Steps retried after a transient failure", ["kind"], registry=r
        )
        self.failures = Counter(
            "rda_failures",
            "Failed attempts of a step, by what failed (broker, chain, disk, network, "
            "worker_crash, other), retried or not",
            ["kind"],
            registry=r,
        )
        self.worker_crashes = Counter(
            "rda_worker_crashes", "Worker processes that died landing a batch", ["topic"],
            registry=r,
        )  # fmt: skip
        self.last_success = Gauge(
            "rda_last_batch_success_timestamp_seconds",
            "Unix time the last batch of the topic finished (offsets committed)",
            ["topic"],
            registry=r,
        )
        self.unfinished = Gauge(
            "rda_unfinished_batches",
            "Journaled batches of the topic not yet done (planned, landing, sequencing)",
            ["topic"],
            registry=r,
        )

        self.quality_pending = Gauge(
            "rda_quality_reports_pending",
            "Anchored checkpoints whose Great Expectations report is not attested yet",
            registry=r,
        )

    def _event_time_metrics(self, r: CollectorRegistry) -> None:
        self.held = Gauge(
            "rda_records_held",
            "Records held, privately, for an event-time window to close (after the last batch)",
            ["topic"],
            registry=r,
        )
        self.held_until = Gauge(
            "rda_held_until_seconds",
            "Event time (Unix seconds) the watermark must pass to release every held record",
            ["topic"],
            registry=r,
        )
        self.windows_closed = Counter(
            "rda_windows_closed",
            "Event-time windows closed (released), one per partition",
            ["topic"],
            registry=r,
        )

    def serve(self, port: int) -> Any:
        """Serve /metrics on 127.0.0.1:port in a daemon thread."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        return server

    def timed_anchor(self, anchor: Anchorer) -> Anchorer:
        def anchored(checkpoints: list[dict]) -> list[dict]:
            started = time.perf_counter()
            results = anchor(checkpoints)
            self.anchor_seconds.observe(time.perf_counter() - started)
            self.gas.inc(sum(r.get("gas_used") or 0 for r in results))
            for checkpoint in checkpoints:
                self.checkpoints.labels(checkpoint["dataset"]).inc()
            return results

        return anchored

    def failed(self, kind: str, retried: bool) -> None:
        """One failed attempt of a step (``streaming.retry.Backoff``'s hook)."""
        self.failures.labels(kind).inc()
        if retried:
            self.retries.labels(kind).inc()

    def batch_done(self, topic: str, summary: BatchSummary, seconds: float) -> None:
        self.read.labels(topic).inc(summary.read)
        self.published.labels(topic).inc(summary.published)
        self.lost.labels(topic).inc(summary.lost)
        self.suppressed.labels(topic).inc(summary.suppressed)
        self.event_time(topic, summary)
        for reason, count in summary.reasons.items():
            self.quarantined.labels(topic, reason).inc(count)
        self.batches.labels(topic).inc()
        self.batch_seconds.labels(topic).observe(seconds)
        self.last_success.labels(topic).set(time.time())
        if summary.crashes:
            self.worker_crashes.labels(topic).inc(summary.crashes)
            self.failures.labels("worker_crash").inc(summary.crashes)
        for step, step_seconds in summary.steps.items():
            self.step_seconds.labels(topic, step).observe(step_seconds)

    def event_time(self, topic: str, summary: BatchSummary) -> None:
        """What the batch left on hold, until when, and the windows it closed."""
        self.held.labels(topic).set(summary.held_total)
        until = summary.held_until
        self.held_until.labels(topic).set(
            dt.datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() if until else 0
        )
        closed = {
            (w["topic"], w.get("partition"), w["window_start"]) for w in summary.windows_closed
        }
        self.windows_closed.labels(topic).inc(len(closed))

    def set_lag(self, topic: str, lag: dict[int, int]) -> None:
        for partition, behind in lag.items():
            self.lag.labels(topic, str(partition)).set(behind)
