"""The sequencer: one batch at a time, under the writer lock, a landed batch joins the logs.

Workers land chunks in parallel, without any lock (``land_chunks``): reading Kafka, the Beam
pipeline and the Parquet files are where the time goes. What must see everything published
before it — dropping duplicates of earlier rows, fixing the batch's place in each dataset log,
appending, the manifests and the anchor — happens here, one batch at a time, as a transparency
log's sequencer does. A batch whose sequencing was interrupted (its worker died or lost the
chain half-way) is finished by the next worker that holds the lock, before anything else, so a
log never holds a half-appended batch under a later one.
"""

from __future__ import annotations

import logging
import time

from pipelines import graph
from pipelines.kafka_source import KafkaSource, KafkaSpec, OffsetRange
from pipelines.protect import Protection
from sinks.dedup import (
    drop_records,
    find_batch_duplicates,
    quarantine_duplicates,
    record_batch_keys,
)
from sinks.layout import DataLayout
from sinks.parquet import ChunkWriter, read_receipt
from streaming import event_state, event_time, faults
from streaming.batch import Anchorer, BatchSummary, Progress, RunConfig, count_receipts
from streaming.commit import commit_and_anchor, log_starts
from streaming.node_cache import device_check
from streaming.store import RunStore

log = logging.getLogger("rda.run")
SEQUENCING = ("landed", "committed")  # states of a batch whose place in the logs is fixed


def landing_message(plan: dict) -> str:
    chunks = [OffsetRange(**c) for c in plan["chunks"]]
    offsets = sum(c.size for c in chunks)
    return f"batch {plan['batch_id']}: reading {offsets} offsets in {len(chunks)} chunks"


def refused_of(plan: dict) -> graph.Refused:
    """The plan's poison records (streaming/poison.py): (partition, offset) -> (code, reason)."""
    return {(p["partition"], p["offset"]): (p["code"], p["reason"]) for p in plan.get("poison", [])}


def land_chunks(
    config: RunConfig, layout: DataLayout, plan: dict, progress: Progress, protection: Protection
) -> None:
    """Run the Beam pipeline over the plan's chunks: Parquet files and a receipt per chunk.

    Records the plan names as poison are quarantined unread (``crashed_worker``).
    """
    chunks = [OffsetRange(**c) for c in plan["chunks"]]
    progress(landing_message(plan))
    graph.run(
        chunks,
        KafkaSpec(config.bootstrap, config.kafka_client, config.kafka_timeout),
        plan.get("wire_format", config.wire_format),
        ChunkWriter(str(layout.root)),
        config.runner,
        protection,
        config.dask_scheduler,
        refused_of(plan),
        device_check(config.signatures, config.nodes, plan, config.topic),
    )


class Sequencer:
    """Sequences batches into the logs; use it only while holding the writer lock."""

    def __init__(
        self,
        config: RunConfig,
        store: RunStore,
        source: KafkaSource,
        anchor: Anchorer,
        progress: Progress,
        protection: Protection,
    ) -> None:
        self.config, self.store, self.source = config, store, source
        self.journal, self.catalog = store.journal, store.catalog
        self.anchor, self.progress, self.protection = anchor, progress, protection
        self.layout = store.layout

    def finish_interrupted(self, except_batch: int | None = None) -> list[BatchSummary]:
        """Finish every batch (of any topic) whose sequencing began and never ended."""
        finished = []
        for entry in self.journal.unfinished_batches():
            if entry["state"] in SEQUENCING and entry["batch_id"] != except_batch:
                log.info(
                    "finishing batch %d of %s, interrupted while it was being sequenced",
                    entry["batch_id"],
                    entry["topic"],
                    extra={"event": "finish_interrupted", "batch_id": entry["batch_id"]},
                )
                finished.append(self.sequence(entry["batch_id"], landed_here=False))
        return finished

    def sequence(self, batch_id: int, landed_here: bool) -> BatchSummary:
        """Give the batch its place in the logs, commit and anchor it: state ``anchored``.

        ``landed_here``: this process has just landed the batch's chunks. Otherwise they are
        landed again first, under the lock, so nobody else can be writing them meanwhile.
        """
        entry = self.journal.batch(batch_id)
        plan, state = entry["plan"], entry["state"]
        if state in ("anchored", "done"):  # another worker finished it meanwhile
            return summary_from_journal(self.store, entry)
        self._sequence_earlier(entry)
        if not landed_here:
            land_chunks(self.config, self.layout, plan, self.progress, self.protection)
        receipts = [read_receipt(self.layout, OffsetRange(**c)) for c in plan["chunks"]]
        started = time.monotonic()
        self._drop_duplicates(batch_id, receipts)
        dedup_s = time.monotonic() - started
        summary = BatchSummary(batch_id, plan["ranges"], resumed=not landed_here)
        outcome = self._decide(entry, receipts, summary)
        if state not in SEQUENCING:  # its place in each log: fixed now, kept by any redo
            plan["log_starts"] = log_starts(self.layout)
            plan["state"] = outcome.state
        self.journal.record_sequencing(
            batch_id,
            plan,
            records_read=summary.read,
            records_published=summary.published,
            records_quarantined=summary.quarantined,
            records_held=summary.held,
        )
        faults.journaled("landed")
        summary.checkpoints = commit_and_anchor(
            self.store,
            plan,
            outcome.receipts,
            self.anchor,
            self.progress,
            self.protection,
        )
        self.journal.set_state(batch_id, "anchored")
        faults.journaled("anchored")
        summary.steps["dedup"] = dedup_s
        return summary

    def _decide(
        self, entry: dict, receipts: list[dict], summary: BatchSummary
    ) -> event_time.Outcome:
        """The event-time step over the landed chunks; the batch's counts, keys, rejects and
        closed windows recorded."""
        batch_id = entry["batch_id"]
        count_receipts(summary, receipts)
        started = time.monotonic()
        outcome = self._event_time(entry["topic"], entry["plan"], receipts)
        summary.steps["event_time"] = time.monotonic() - started
        event_state.account(summary, outcome)
        self._record_keys(batch_id, receipts, outcome)
        # Records the step quarantined were read here, in the driver: close that connection, so
        # no Kafka client of this process is open when it next forks (a forked librdkafka
        # handle aborts the child when the child's garbage collector frees it).
        close = getattr(self.source, "close", None)
        if close is not None:
            close()
        entries = quarantine_entries(receipts) + outcome.quarantine_entries
        self.catalog.quarantine.register(batch_id, entries)
        self.catalog.quarantine.refresh_view()  # a batch may quarantine and publish nothing
        self.catalog.windows.record(batch_id, outcome.closed)
        return outcome

    def _sequence_earlier(self, entry: dict) -> None:
        """Batches of the topic planned earlier over the same partitions go first, so that
        each partition's event-time state advances in stream order (after a rebalance the
        new owner of a partition may land its batch before the old owner)."""
        mine = {r["partition"] for r in entry["plan"]["ranges"]}
        for other in self.journal.unfinished_batches(entry["topic"]):
            if other["batch_id"] >= entry["batch_id"] or other["state"] != "planned":
                continue
            if mine & {r["partition"] for r in other["plan"]["ranges"]}:
                self.sequence(other["batch_id"], landed_here=False)

    def _event_time(self, topic: str, plan: dict, receipts: list[dict]) -> event_time.Outcome:
        """Decide, with the topic's state, what the batch publishes, holds and releases."""
        partitions = plan.get("state", {}).get("partitions")
        if partitions is None:  # every partition with records holds the windows open
            ends = self.source.high_watermarks(topic)
            partitions = sorted(p for p, end in ends.items() if end > 0)
        info = event_state.state_plan(self.journal, topic, plan, partitions)
        event_state.collect(self.layout, self.journal, topic, keep_also=info.get("base"))
        return event_time.decide(
            self.layout, {**plan, "topic": topic}, receipts, self.source.read, self.protection, info
        )

    def _record_keys(self, batch_id: int, receipts: list[dict], outcome) -> None:
        """Index the natural keys the batch adds: rows published now and rows put on hold (a
        redo replaces what it recorded)."""
        datasets = {d for r in receipts for d in r["files"]} | set(outcome.key_files)
        for dataset in sorted(datasets):
            record_batch_keys(self.catalog, dataset, batch_id, outcome.key_files.get(dataset, []))

    def _drop_duplicates(self, batch_id: int, receipts: list[dict]) -> None:
        """Quarantine records repeating a natural key published earlier, in every dataset."""
        reasons: dict[tuple[int, int], str] = {}
        datasets = sorted({d for r in receipts for d in r["files"]})
        for dataset in datasets:
            new = [r["files"][dataset]["path"] for r in receipts if dataset in r["files"]]
            found = find_batch_duplicates(self.catalog, dataset, batch_id, new)
            for record, message in found.items():
                reasons.setdefault(record, message)
        if reasons:
            for receipt in receipts:
                drop_records(self.layout, receipt, set(reasons))
                quarantine_duplicates(self.layout, self.source, receipt, reasons)


def summary_from_journal(store: RunStore, entry: dict) -> BatchSummary:
    """The summary of a batch sequenced earlier (by this worker or another), from the journal
    and the catalog (its quarantine reasons, so metrics count a resumed batch's rejects too)."""
    read = entry["records_read"] or 0
    published = entry["records_published"] or 0
    quarantined = entry["records_quarantined"] or 0
    held = entry.get("records_held") or 0
    now = event_state.held_report(store.layout, store.journal, [entry["topic"]])
    held_now = now.get(entry["topic"], {})
    return BatchSummary(
        entry["batch_id"],
        entry["plan"]["ranges"],
        read=read,
        published=published,
        quarantined=quarantined,
        suppressed=read - published - quarantined - held,
        held=held,
        held_total=held_now.get("held_records", 0),  # on hold now (the topic's latest state)
        held_until=held_now.get("held_until"),
        reasons=store.catalog.quarantine.batch_reasons(entry["batch_id"]),
        checkpoints=store.catalog.batch_checkpoints(entry["batch_id"]),
        resumed=True,
    )


def quarantine_entries(receipts: list[dict]) -> list[dict]:
    """Catalog entries for each chunk's quarantine file and its cross-chunk duplicates file."""
    entries = []
    for r in receipts:
        duplicates = r.get("duplicates_file")
        later = duplicates["rows"] if duplicates else 0
        if r["quarantine_file"]:
            reasons = {**r["reasons"], "duplicate": r["reasons"].get("duplicate", 0) - later}
            entries.append(
                {
                    **r["range"],
                    "path": r["quarantine_file"],
                    "rows": r["quarantined"] - later,
                    "reasons": {code: n for code, n in reasons.items() if n},
                }
            )
        if duplicates:
            entries.append(
                {
                    **r["range"],
                    "path": duplicates["path"],
                    "rows": later,
                    "reasons": {"duplicate": later},
                }
            )
    return entries
