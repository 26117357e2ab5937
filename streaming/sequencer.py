"""The sequencer: a landed batch's rows join their shards' logs and are anchored, with no lock.

Workers land chunks in parallel (``land_chunks``): reading Kafka, the Beam pipeline and the
staged Parquet files are where the time goes. Sequencing a batch is then: drop records
repeating a natural key already published (or held) in the same shard (the index of the shard's
keys is kept in the worker's own catalog, and caught up from the shard's head when the shard
comes from another worker); the event-time step, partition by partition (each partition's state
is its own: ``streaming/event_state.py``), which writes the published files; their leaf hashes;
publish the batch's files and state to the store; commit and anchor (``streaming/commit.py``:
the registry's compare-and-swap decides between workers). Each worker sequences only the shards
and states of the partitions it owns; nothing is shared but the store and the chain.
"""

from __future__ import annotations

import logging
import time

from pipelines import graph
from pipelines.device_signatures import DeviceCheck
from pipelines.kafka_source import KafkaSource, KafkaSpec, OffsetRange
from pipelines.protect import Protection
from proofs.shard_log import write_leaf_file
from proofs.shards import shard_id
from proofs.signing import PublisherKey
from schemas.published import published_schema_for_dataset
from sinks.dedup import (
    catch_up_shards,
    drop_records,
    find_shard_duplicates,
    quarantine_duplicates,
    record_shard_keys,
)
from sinks.layout import DataLayout
from sinks.parquet import ChunkWriter, read_receipt
from streaming import event_state, faults, quality_queue
from streaming.batch import BatchSummary, Progress, RunConfig, count_receipts
from streaming.batch_files import added_files, publish_batch_files, shard_rows
from streaming.checkpoints import ChainView, Checkpoints, answers_at_once, dataset_path
from streaming.commit import CommitContext, commit_and_anchor
from streaming.event_time import Outcome
from streaming.hydration import hydrate
from streaming.node_cache import device_check
from streaming.records_lost import lost_records
from streaming.scratch import scratch
from streaming.shared_step import Helper
from streaming.store import HeldStore, RunStore, Workspace, journaling, writing

log = logging.getLogger("rda.run")
SEQUENCING = ("landed", "committed")  # states of a batch whose duplicates were dropped


def landing_message(plan: dict) -> str:
    chunks = [OffsetRange(**c) for c in plan["chunks"]]
    offsets = sum(c.size for c in chunks)
    return f"batch {plan['batch_id']}: reading {offsets} offsets in {len(chunks)} chunks"


def refused_of(plan: dict) -> graph.Refused:
    """The plan's poison records (streaming/poison.py): (partition, offset) -> (code, reason)."""
    return {(p["partition"], p["offset"]): (p["code"], p["reason"]) for p in plan.get("poison", [])}


def land_chunks(
    config: RunConfig,
    layout: DataLayout,
    plan: dict,
    progress: Progress,
    protection: Protection,
    devices: DeviceCheck | None = None,
) -> None:
    """Run the Beam pipeline over the plan's chunks: staged Parquet files and a receipt per
    chunk. Records the plan names as poison are quarantined unread. ``devices``: the plan's
    device-signature check (by default made here from ``config``'s node registry)."""
    chunks = [OffsetRange(**c) for c in plan["chunks"]]
    progress(landing_message(plan))
    if devices is None:
        devices = device_check(config.signatures, config.nodes, plan, config.topic)
    with scratch(layout):  # Beam's folder: left in the work directory if this process is killed
        graph.run(
            chunks,
            KafkaSpec(
                config.bootstrap,
                config.kafka_client,
                config.kafka_timeout,
                plan.get("max_chunk_bytes"),  # a plan from before the bound: none
            ),
            plan.get("wire_format", config.wire_format),
            ChunkWriter(str(layout.root)),
            config.runner,
            protection,
            config.dask_scheduler,
            refused_of(plan),
            devices,
        )


def write_leaves(layout: DataLayout, receipt: dict) -> None:
    """Each of the receipt's published files' leaf file, from the file's rows (the event-time
    step writes its files' leaves as it writes them; a replay's landing does not)."""
    import pyarrow.parquet as pq

    for file in receipt["files"].values():
        path = layout.root / file["path"]
        write_leaf_file(path, pq.read_table(path))


class Sequencer:
    """Sequences the batches of one worker into their shards and the dataset checkpoints."""

    def __init__(
        self,
        config: RunConfig,
        space: Workspace,
        source: KafkaSource,
        chain: ChainView,
        progress: Progress,
        protection: Protection,
        signer: PublisherKey,
        helper: Helper | None = None,
    ) -> None:
        """``helper``: an idle kept child to decide part of a large batch's event time in."""
        self.config, self.space, self.source = config, space, source
        self.chain, self.progress, self.protection = chain, progress, protection
        self.signer, self.helper = signer, helper
        self.layout = space.work

    def sequence(self, entry: dict, landed_here: bool) -> BatchSummary:
        """Drop the batch's duplicates, decide its event time, publish its files, commit and
        anchor it: ``anchored``.

        ``landed_here``: this process has just landed the batch's chunks. Otherwise they are
        landed again first, identically.
        """
        batch_id = entry["batch_id"]
        with journaling(self.space) as journal:  # as journaled now: with its poison records
            entry = journal.batch(batch_id)
        if entry["state"] in ("anchored", "done"):  # finished meanwhile (by an adopter)
            with writing(self.space) as store:
                return summary_from_journal(store, entry)
        plan = entry["plan"]
        if not landed_here:
            land_chunks(self.config, self.layout, plan, self.progress, self.protection)
        receipts = [read_receipt(self.layout, OffsetRange(**c)) for c in plan["chunks"]]
        checkpoints = Checkpoints(self.space.store, self.chain)
        started = time.monotonic()
        summary = BatchSummary(batch_id, plan["ranges"], resumed=not landed_here)
        summary.lost = lost_records(plan)
        with HeldStore(self.space) as held:  # one opening of the catalog for the whole batch
            store = held.open()
            self._drop_duplicates(store, checkpoints, batch_id, receipts)
            summary.steps["dedup"] = time.monotonic() - started
            outcome = self._decide(store, entry, receipts, summary)
            faults.journaled("landed")
            if self.config.validate_ahead and not plan.get("checkpoints"):  # (none committed)
                self._validate_ahead(outcome.receipts)
            self._anchor(held, plan, receipts, outcome, checkpoints, summary)
            store = held.open()  # again, after a node's anchor
            shards = {shard for _, shard in batch_shards(outcome.receipts)}
            record_anchored(store, checkpoints, batch_id, summary.checkpoints, shards)
            store.journal.set_state(batch_id, "anchored")
        faults.journaled("anchored")
        return summary

    def _validate_ahead(self, receipts: list[dict]) -> None:
        """Queue the files each dataset's checkpoint will add for the run's quality worker,
        which validates them while this process commits and anchors them: the checkpoint's
        job then signs the report (``streaming/quality_queue.py``)."""
        try:
            for dataset, shards in shard_rows(self.layout, receipts).items():
                quality_queue.validate_ahead(self.layout, dataset, added_files(shards))
        except OSError as error:  # a head start only: the jobs validate the files themselves
            log.warning("files not queued for GE ahead of their checkpoints: %s", error)

    def _anchor(
        self,
        held: HeldStore,
        plan: dict,
        receipts: list[dict],
        outcome: Outcome,
        checkpoints: Checkpoints,
        summary: BatchSummary,
    ) -> None:
        """Publish the batch's files to the store, commit its shards and dataset checkpoints,
        anchor them: ``summary.checkpoints``, and the steps' seconds."""
        started = time.monotonic()
        staged = [{**r, "files": {}} for r in receipts]  # staged files stay in the work dir
        extra = outcome.private_files + [e["path"] for e in outcome.quarantine_entries]
        publish_batch_files(self.space.store, self.layout, staged + outcome.receipts, extra)
        summary.steps["publish"] = time.monotonic() - started
        context = CommitContext(
            self.space.store,
            self.layout,
            self.chain,
            self.signer,
            self.protection,
            self.progress,
            lambda pending: self._committed(held, plan, pending),
            checkpoints,
        )
        summary.checkpoints = commit_and_anchor(context, plan, outcome.receipts)
        summary.steps.update(context.seconds)

    def _decide(
        self, store: RunStore, entry: dict, receipts: list[dict], summary: BatchSummary
    ) -> Outcome:
        """The event-time step over the batch's staged chunks, partition by partition, and
        their published files' leaves; the batch's counts, keys, rejects, closed windows and
        state journaled (``landed``)."""
        batch_id, plan = entry["batch_id"], entry["plan"]
        count_receipts(summary, receipts)
        started = time.monotonic()
        step = (self.source.read, self.protection, self.space.store)
        outcome = event_state.decide_batch(
            self.layout, entry["topic"], plan, receipts, step, store.journal, self.helper
        )
        summary.steps["event_time"] = time.monotonic() - started
        event_state.account(summary, outcome)
        plan.setdefault("state", outcome.state)  # where each partition's state started: kept
        self._record_keys(store, batch_id, receipts, outcome)
        entries = quarantine_entries(receipts) + outcome.quarantine_entries
        store.catalog.quarantine.register(batch_id, entries)
        store.catalog.windows.record(batch_id, outcome.closed)
        store.journal.record_sequencing(
            batch_id,
            plan,
            records_read=summary.read,
            records_published=summary.published,
            records_quarantined=summary.quarantined,
            records_held=summary.held,
            windows=[_window_score(w) for w in outcome.closed],
        )
        return outcome

    def _record_keys(
        self, store: RunStore, batch_id: int, receipts: list[dict], outcome: Outcome
    ) -> None:
        """Index the natural keys the batch adds to each shard: rows published now and rows
        put on hold (a redo replaces what it recorded)."""
        shards = {shard for _, shard in batch_shards(receipts)} | set(outcome.key_files)
        paths = {shard: outcome.key_files.get(shard, []) for shard in shards}
        record_shard_keys(store.catalog, batch_id, paths, outcome.key_rows)

    def _committed(self, held: HeldStore, plan: dict, pending: list[dict]) -> None:
        """Before the anchor: the checkpoints about to be anchored, journaled (a redo after a
        crash past the anchor finds them on chain and only records them). The catalog is let go
        while a node mines the anchor; the in-process chain answers at once."""
        plan["checkpoints"] = pending
        journal = held.open().journal
        journal.update_plan(plan["batch_id"], plan)
        journal.set_state(plan["batch_id"], "committed")
        if not answers_at_once(self.chain):
            held.release()
        faults.journaled("committed")

    def _fetch(self, path: str) -> None:
        """A published object, from the store to the work directory unless there already."""
        local = self.layout.root / path
        if not local.exists():
            self.space.store.get_file(path, local)

    def _drop_duplicates(
        self, store: RunStore, checkpoints: Checkpoints, batch_id: int, receipts: list[dict]
    ) -> None:
        """Quarantine records repeating a natural key published (or held) earlier in the same
        shard: the batch's staged rows, before the event-time step sees them."""
        catalog = store.catalog
        shards = batch_shards(receipts)
        datasets = sorted({d for d, _ in shards})
        anchored = {d: checkpoints.base(d).heads for d in datasets}
        heads = [(d, anchored[d][s]) for d, s in sorted(shards) if s in anchored[d]]
        hydrate(catalog, checkpoints, heads, self._fetch)
        catch_up_shards(catalog, sorted(s for _, s in shards))  # after hydrating: one lookup
        new = {shard: paths for (_, shard), paths in sorted(shards.items())}
        reasons = find_shard_duplicates(catalog, batch_id, new)  # one statement for the batch
        if reasons:
            for receipt in receipts:
                drop_records(self.layout, receipt, set(reasons))
                quarantine_duplicates(self.layout, self.source, receipt, reasons)


def _window_score(window: dict) -> dict:
    """What the journal keeps of a closed window (``rda status`` lists the last ones)."""
    keys = ("dataset", "topic", "partition", "window_start", "window_end", "score")
    return {k: window.get(k) for k in keys}


def batch_shards(receipts: list[dict]) -> dict[tuple[str, str], list[str]]:
    """(dataset, shard) -> the batch's file paths in it, in leaf order."""
    found: dict[tuple[str, str], list[str]] = {}
    for receipt in receipts:
        source = receipt["range"]
        for dataset, file in receipt["files"].items():
            shard = shard_id(dataset, source["topic"], source["partition"])
            found.setdefault((dataset, shard), []).append(file["path"])
    return found


def record_anchored(
    store: RunStore,
    checkpoints: Checkpoints,
    batch_id: int,
    anchored: list[dict],
    shards: set[str],
) -> None:
    """The worker's catalog: the batch's files (with their place in their shard) and the
    anchored checkpoints, and the views over them."""
    catalog = store.catalog
    files = {}
    for checkpoint in anchored:
        dataset = checkpoint["dataset"]
        manifest = checkpoints.manifest(
            dataset, checkpoint["manifest_path"].split("/", 2)[2], checkpoint["manifest_sha256"]
        )
        for head in (h for h in manifest["shards"] if h["shard"] in shards):
            shard_manifest = checkpoints.manifest(
                dataset, head["manifest_path"], head["manifest_sha256"]
            )
            for entry in shard_manifest["files"]:
                if entry.get("batch_id") == batch_id:
                    path = dataset_path(dataset, entry["path"])
                    files[path] = {**entry, **entry["source"], "path": path, "dataset": dataset}
        schema = published_schema_for_dataset(dataset)
        catalog.register_dataset(dataset, schema.describe(), schema.fingerprint())
    catalog.register_files(batch_id, list(files.values()))
    catalog.record_checkpoints(batch_id, anchored)
    catalog.refresh_views({c["dataset"] for c in anchored})


def summary_from_journal(store: RunStore, entry: dict) -> BatchSummary:
    """The summary of a batch sequenced earlier (by this worker or another), from the journal
    and the catalog (its quarantine reasons, so metrics count a resumed batch's rejects too)."""
    read = entry["records_read"] or 0
    published = entry["records_published"] or 0
    quarantined = entry["records_quarantined"] or 0
    held = entry.get("records_held") or 0
    topic = entry["topic"]
    partitions = {topic: event_state.batch_partitions(entry["plan"])}
    now = event_state.held_report(store.layout, store.journal, partitions, store.store)
    held_now = now.get(topic, {})  # on hold now in the batch's partitions (their latest state)
    return BatchSummary(
        entry["batch_id"],
        entry["plan"]["ranges"],
        read=read,
        published=published,
        quarantined=quarantined,
        suppressed=read - published - quarantined - held,
        held=held,
        held_total=held_now.get("held_records", 0),
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
