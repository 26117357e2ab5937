"""The continuous ``rda run`` loop: one micro-batch per topic per trigger, until stopped.

Each batch is ``streaming.driver.run_batch``: journaled, so anything that interrupts it (an
outage, a signal, ``kill -9``) leaves a plan that the next attempt or the next process redoes
identically.
This module adds what a long-running process needs around it: retries with backoff while the
broker or the chain is away, a clean stop on SIGTERM/SIGINT, metrics, logs and a live display.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Protocol

from infra.state import InfraState
from pipelines.kafka_source import TopicNotFound, open_source
from streaming.chain import ChainContext
from streaming.chain_opening import ChainOpening, chain_target, open_and_bind
from streaming.config import RunSettings, kafka_bootstrap
from streaming.driver import BatchSummary, RunConfig, Worker, run_batch, sweep_staged
from streaming.errors import SettingsError
from streaming.event_state import event_time_config
from streaming.keys import shared_keys
from streaming.lag import LagWatcher
from streaming.membership import Membership
from streaming.metrics import RunMetrics
from streaming.poison import landing_process
from streaming.quality_queue import pending
from streaming.quality_worker import QualityWorker, QueueOnly
from streaming.quality_worker import for_run as quality_for_run
from streaming.retry import Backoff
from streaming.run_report import RunReport, log_batch
from streaming.scratch import sweep_scratch
from streaming.store import run_workspace, writing
from streaming.workers import Heartbeat, this_worker


class StatusLine(Protocol):
    """A line on the terminal that the loop rewrites with its progress (e.g. rich's status)."""

    def update(self, message: str) -> None: ...


class Abandon(BaseException):
    """A second stop signal: leave the current step; the journal lets the next start redo it."""


class _Anchoring:
    """The run's anchorer: the chain's ``anchor``, timed, and its ``latest`` reads."""

    def __init__(self, loop: RunLoop) -> None:
        self.loop = loop

    def __call__(self, checkpoints: list[dict]) -> list[dict]:
        return self.loop.metrics.timed_anchor(self.loop.ready_chain().anchor)(checkpoints)

    def latest(self, log: str):
        return self.loop.ready_chain().latest(log)

    @property
    def in_process(self) -> bool:
        return self.loop.ready_chain().in_process


class RunLoop:
    def __init__(
        self,
        settings: RunSettings,
        log: logging.Logger,
        status_line: Callable[[], AbstractContextManager[StatusLine]] | None = None,
        quality: QualityWorker | QueueOnly | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.status_line = status_line  # a live line on a terminal, kept up to date
        self.stop = threading.Event()
        self.report = RunReport()
        self.metrics = RunMetrics()
        self.backoff = Backoff(
            cap=settings.backoff_max, attempts=settings.retries, on_failure=self.metrics.failed
        )
        self.lag: LagWatcher | None = None  # with --metrics-port
        self.chain: ChainContext | None = None  # once opened (``ready_chain``)
        self._chain_opening: ChainOpening[ChainContext] | None = None
        self._state = state = InfraState.load()
        self.bootstrap = kafka_bootstrap(settings, state.kafka_bootstrap)
        self.source = open_source(self.bootstrap, settings.kafka_timeout, settings.kafka_client)
        self._status: StatusLine | None = None
        self.group = Membership(
            settings, self.bootstrap, self.backoff, self.stop, self.metrics, log
        )
        self.worker = Worker(
            this_worker(), lander=landing_process(settings.landers), chain_ready=self.ready_chain
        )  # the landers' children are forked at the start
        self.space = run_workspace(settings, self.worker.id)
        # Great Expectations, after the anchor, in a child working in the same work directory
        # (``quality``: one the caller started already, on that directory).
        self.quality = quality or quality_for_run(settings, self.space.work.root)
        self._unfinished_at = float("-inf")  # when the unfinished-batches gauge was last set

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> RunReport:
        if self.settings.join_group and (self.settings.chain or self._state.chain_kind) == (
            "embedded"
        ):
            raise SettingsError(
                "--join-group needs a chain the workers share (--chain anvil or rpc): "
                "the embedded chain lives inside one process"
            )
        topics = self._resume_first(list(self.settings.topics))
        swept = sweep_staged(self.space)
        if swept:
            self.log.info("removed the staged files of %d chunks of done batches", swept)
        sweep_scratch(self.space.work)  # Beam's folders of landing children killed mid-pipeline
        heartbeat = Heartbeat(self.space.store, self.worker.id)
        with (
            self._signals(),
            self._landing(),  # first: the landing child is forked before any other thread
            self._metrics_server(),
            self._display(),
            heartbeat,
            self._lag_gauge(),
            self._membership(),
            self._quality_worker(),
        ):
            try:
                self._open_chain()
                while not self.stop.is_set():
                    started = time.monotonic()
                    self.group.keep()
                    found, backlog = self._one_round(topics)
                    self._round_metrics(found, backlog)
                    if self.settings.once and not found:
                        break
                    # Caught up: wait for the next trigger. Not with --once, which only looks
                    # again for what came meanwhile: the wait was up to --interval of sleep
                    # before it could exit (~1 s of a 6.6 s run over 221,567 records).
                    if not backlog and not self.settings.once:
                        elapsed = time.monotonic() - started
                        self.group.idle(max(0.0, self.settings.interval - elapsed))
                self.chain = self._chain_opening.ready()  # even if no batch needed it; or its error
                if self.settings.once and not self.stop.is_set():
                    self.quality.finish()  # every checkpoint is queued: GE takes both cores now
                if self.worker.lander is not None:  # no batch lands now: they go while GE ends
                    self.worker.lander.close()
            except Abandon:
                self.log.info("abandoned the current step; the next start redoes its batch")
        return self.report

    def _one_round(self, topics: list[str]) -> tuple[bool, bool]:
        """One batch per topic; (any records found, any batch full: a backlog remains)."""
        found = backlog = False
        for topic in topics:
            if self.stop.is_set():
                break
            config = self._config(topic)
            started = time.monotonic()
            try:
                summary = self.backoff.call(
                    f"batch on {topic}",
                    lambda c=config: run_batch(
                        c, self.source, _Anchoring(self), self._progress, self.worker
                    ),
                    self.stop,
                )
            except TopicNotFound:
                self.log.warning("topic %s does not exist (yet); nothing to read", topic)
                continue
            if summary is None:
                continue
            found = True
            backlog |= sum(r["end"] - r["start"] for r in summary.ranges) >= (
                config.max_batch_records
            )
            self._finished(topic, summary, time.monotonic() - started)
        return found, backlog

    def _finished(self, topic: str, summary: BatchSummary, seconds: float) -> None:
        self.report.add(summary)
        self.metrics.batch_done(topic, summary, seconds)
        log_batch(self.log, topic, summary, seconds)
        if self.lag is not None:
            self.lag.refresh()
        self.quality.nudge()
        self.metrics.quality_pending.set(len(pending(self.quality.layout)))

    @contextmanager
    def _landing(self) -> Iterator[None]:
        """The run's landing child and Kafka connections live as long as the run.

        The child, and the spawner that forks its replacements (``streaming/spawner.py``), are
        forked while this process has one thread and no Kafka client: a fork copies the locks
        other threads hold, not the threads. Forked beside the lag watcher's first refresh, a
        child found confluent_kafka's import lock held for good, or librdkafka's state half
        made, and landed nothing until the stall check killed it."""
        if self.worker.lander is not None:
            self.worker.lander.start()
        try:
            yield
        finally:
            if self.worker.lander is not None:
                self.worker.lander.close()
            self.source.close()

    @contextmanager
    def _metrics_server(self) -> Iterator[None]:
        """/metrics served in a daemon thread for as long as the process lives."""
        if self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_port)
            self.log.info("metrics on http://127.0.0.1:%d/metrics", self.settings.metrics_port)
        yield

    @contextmanager
    def _quality_worker(self) -> Iterator[None]:
        """GE's reports in a child process; at the end of --once, the whole queue is done
        (a stopped run leaves what is queued to the next start)."""
        self.quality.start()  # warms GE up meanwhile; then what an earlier run left queued
        try:
            yield
        finally:
            self.quality.stop(drain_queue=self.settings.once and not self.stop.is_set())

    @contextmanager
    def _lag_gauge(self) -> Iterator[None]:
        """With metrics served: the consumer lag, refreshed on a timer and after each batch."""
        if self.settings.metrics_port is None:
            yield
            return
        self.lag = LagWatcher(
            self.bootstrap, self.settings.group, self.settings.topics, self.metrics,
            self.settings.lag_interval, min(self.settings.kafka_timeout, 10.0),
            self.settings.kafka_client,
        )  # fmt: skip
        with self.lag:
            yield

    def _round_metrics(self, found: bool, backlog: bool) -> None:
        """After a round: a drained topic's lag at once; the unfinished batches now and then,
        and at once when caught up (under a backlog, the batch landed ahead is unfinished)."""
        if self.settings.metrics_port is None:
            return
        if not found and self.lag is not None:
            self.lag.refresh()
        now = time.monotonic()
        if backlog and now - self._unfinished_at < self.settings.lag_interval:
            return
        self._unfinished_at = now
        try:
            with writing(self.space) as store:
                counts = store.journal.unfinished_counts()
        except Exception as error:  # a gauge never stops the run; the next round tries again
            self.log.debug("unfinished batches not counted: %s", error)
            return
        for topic in self.settings.topics:
            self.metrics.unfinished.labels(topic).set(counts.get(topic, 0))

    def _config(self, topic: str) -> RunConfig:
        t = self.settings.topics[topic]
        return RunConfig(
            self.bootstrap,
            topic,
            self.settings.group,
            self.settings.data_dir,
            wire_format=t.format,
            max_chunk_records=t.max_chunk_records,
            max_chunk_bytes=t.max_chunk_bytes,
            max_batch_records=t.max_batch_records,
            min_partition_share=t.min_partition_share,
            runner=self.settings.runner,
            crash_limit=self.settings.crash_limit,
            kafka_timeout=self.settings.kafka_timeout,
            kafka_client=self.settings.kafka_client,
            accept_retention_loss=self.settings.accept_retention_loss,
            dask_scheduler=self.settings.dask_scheduler,
            signatures=t.signatures,
            nodes=self.chain.nodes if self.chain is not None else None,
            work_dir=self.space.work.root,
            validate_ahead=isinstance(self.quality, QualityWorker),
            **event_time_config(self.settings),
        )

    def _resume_first(self, topics: list[str]) -> list[str]:
        """Topics with unfinished batches first, so a crashed batch is finished before new ones."""
        with writing(self.space) as store:
            unfinished = store.journal.unfinished_topics()
        first = [t for t in unfinished if t in topics]
        return [*first, *(t for t in topics if t not in first)]

    # -- the consumer group -----------------------------------------------------------------

    @contextmanager
    def _membership(self) -> Iterator[None]:
        """With --join-group: a member of the group for as long as the loop runs, landing and
        committing only the partitions it owns (``streaming/membership.py``)."""
        if not self.settings.join_group:
            yield
            return
        with self.group.joined():
            self.worker = replace(self.worker, owned=self.group.owned, commit=self.group.commit)
            yield

    # -- the chain --------------------------------------------------------------------------

    def _open_chain(self) -> None:
        """Start opening the chain: beside the first landing, unless plans need it (a node
        registry's block is journaled with each plan): ``streaming/chain_opening.py``."""
        target = chain_target(self.settings, InfraState.load())
        shared_keys(self.space)  # made here, not raced by the binding's thread
        opening = lambda: open_and_bind(target, self.space, self.backoff, self.stop)  # noqa: E731
        self._chain_opening = ChainOpening(opening)
        self._chain_opening.start(background=target.nodes is None)
        if target.nodes is not None:
            self.ready_chain()

    def ready_chain(self) -> ChainContext:
        """The run's chain, once opened and bound to the data directory (waits for it)."""
        assert self._chain_opening is not None, "the run has not started"
        self.chain = self._chain_opening.ready()
        if self.chain is None:  # stopped while connecting: the next start redoes the batch
            raise Abandon("stopped while opening the chain")
        return self.chain

    # -- signals and display ----------------------------------------------------------------

    @contextmanager
    def _signals(self) -> Iterator[None]:
        def on_signal(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            if self.stop.is_set():
                raise Abandon(name)
            self.report.stopped_by = name
            self.stop.set()
            self.log.info("%s: stopping after the current step (again to abandon it)", name)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def _display(self) -> Iterator[None]:
        if self.status_line is None:
            yield
            return
        with self.status_line() as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None

    def _progress(self, message: str) -> None:
        if self._status is not None:
            t = self.report.totals
            self._status.update(
                f"{message}  [dim]({t['batches']} batches: {t['read']:,} read, "
                f"{t['published']:,} published, {t['quarantined']:,} quarantined)[/dim]"
            )
        else:
            self.log.info(message, extra={"event": "progress"})
