"""``rda quarantine replay``: give quarantined records another chance after a fix.

After a fix — a new adapter, a corrected schema range — the records still in quarantine are
standardized again. Those that now pass are published as a *replay batch*: written to their
datasets, appended to the logs, checkpointed and anchored like any batch, and marked resolved so
they leave the quarantine. Records whose natural key is already published stay in quarantine,
and so do records that still fail (their new reason is reported). Replaying twice publishes
nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.device_signatures import REASONS as SIGNATURE_CODES
from pipelines.device_signatures import REQUIRED, DeviceCheck
from pipelines.graph import Refused, standardize_chunk
from pipelines.protect import Protection
from pipelines.standardize import Standardized
from pipelines.windows import WINDOW_CLOSED
from schemas.records import RAW_RECORD_SCHEMA
from sinks.catalog import Catalog
from sinks.dedup import drop_records, find_batch_duplicates
from sinks.layout import DataLayout
from sinks.parquet import write_parquet
from streaming import quality_pool
from streaming.batch import Anchorer, Progress
from streaming.batch_files import publish_batch_files
from streaming.checkpoints import Checkpoints
from streaming.commit import CommitContext, commit_and_anchor
from streaming.driver import chain_view
from streaming.errors import SettingsError
from streaming.keys import shared_keys
from streaming.node_cache import PLAN_KEY, NodeRegistryCache, device_check, resolve_policy
from streaming.poison import standardize_contained
from streaming.sequencer import batch_shards, record_anchored, write_leaves
from streaming.store import RunStore, Workspace, workspace, writing

log = logging.getLogger("rda.run")
REPLAY_TOPIC = "(replay)"  # the journal's topic column for replay batches
# Codes decided against the stream's state (a node's last accepted place, the closed windows):
# a replay judges records on their own, so it cannot decide them again, and would publish them
# (24 of 27 teleports were). They stay quarantined.
STATEFUL_CODES = ("teleport", WINDOW_CLOSED)


@dataclass
class ReplaySummary:
    batch_id: int | None = None
    considered: int = 0
    published: int = 0
    still_quarantined: dict[str, int] = field(default_factory=dict)
    not_replayed: dict[str, int] = field(default_factory=dict)  # codes no replay decides
    checkpoints: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "records_considered": self.considered,
            "records_published": self.published,
            "still_quarantined": self.still_quarantined,
            "not_replayed": self.not_replayed,
            "checkpoints": self.checkpoints,
        }


def replay(
    data_dir: Path,
    default_format: str | None,
    anchor: Anchorer,
    reason: str | None = None,
    topic: str | None = None,
    progress: Progress = lambda _: None,
    override: bool = False,
    crash_limit: int = 3,
    signatures: str = "auto",
    nodes: NodeRegistryCache | None = None,
) -> ReplaySummary:
    """Publish what of the pending quarantine now passes, as one anchored batch.

    ``default_format``: for records without a header, or with ``override`` for all (wrong
    headers). Decoding runs in a child: a record that kills it stays, as ``crashed_worker``.
    Device signatures are checked as in any batch (``signatures``, against ``nodes`` as of the
    replay's plan): a replay never publishes what ingest would refuse."""
    kept = not_replayable(signatures, nodes)
    if reason in kept:
        raise SettingsError(kept[reason])
    space = workspace(data_dir)
    layout = space.work
    summary = ReplaySummary()
    with writing(space) as store:
        catalog, journal = store.catalog, store.journal
        here = _work_of(layout)
        for unfinished in journal.unfinished_batches(REPLAY_TOPIC):
            # Its files are in the work directory that planned it: finished there only (another
            # worker sharing the store may be replaying right now).
            if unfinished["plan"].get("work", here) == here:
                _finish(space, store, unfinished["plan"], anchor, progress, again=True)
        pending = _replayable(catalog, reason, topic, kept, summary)
        if pending.num_rows:
            request = _Request(default_format, override, crash_limit, signatures, nodes)
            filters = {"reason": reason, "topic": topic}
            _replay_pending(space, store, pending, request, filters, anchor, progress, summary)
    quality_pool.drain(layout)  # GE's report of the replay's checkpoints, after their anchor
    return summary


def _replay_pending(
    space: Workspace,
    store: RunStore,
    pending: pa.Table,
    request: _Request,
    filters: dict,
    anchor: Anchorer,
    progress: Progress,
    summary: ReplaySummary,
) -> None:
    """Standardize ``pending`` (of ``filters``) again and publish what passes as one replay
    batch."""
    layout, catalog, journal, here = space.work, store.catalog, store.journal, _work_of(space.work)
    batch_id = journal.next_batch_id("replay")
    summary.batch_id = batch_id
    plan = {
        "batch_id": batch_id,
        "kind": "replay",
        "planned_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ranges": [],
        "filter": filters,
        "work": here,
    }
    if request.nodes is not None:
        plan[PLAN_KEY] = request.nodes.refresh()
    journal.record_plan(batch_id, REPLAY_TOPIC, plan)
    progress(f"replay batch {batch_id}: standardizing {pending.num_rows} quarantined records")
    checks = lambda t: device_check(request.signatures, request.nodes, plan, t)  # noqa: E731
    decode = _Decoder(request.default_format, request.override, request.crash_limit, checks)
    receipts, outcome = _land_replay(layout, batch_id, pending, decode)
    _drop_already_published(layout, catalog, batch_id, receipts, outcome)
    # What it is to publish, journaled before anything is committed: the next replay finishes
    # the batch from here if its checkpoints got journaled too, else closes it (``_finish``).
    plan["receipts"] = receipts
    plan["published"] = [list(key) for key, code in outcome.items() if code is None]
    journal.update_plan(batch_id, plan)
    summary.checkpoints = _finish(space, store, plan, anchor, progress)
    summary.published = len(plan["published"])
    summary.still_quarantined = dict(
        sorted(Counter(c for c in outcome.values() if c is not None).items())
    )


@dataclass(frozen=True)
class _Request:
    """How a replay standardizes records again (``replay``'s arguments of that name)."""

    default_format: str | None
    override: bool
    crash_limit: int
    signatures: str
    nodes: NodeRegistryCache | None


def _work_of(layout: DataLayout) -> str:
    """Which work directory a replay batch was planned in: host and path."""
    return f"{socket.gethostname()}:{layout.root.absolute()}"


def _replayable(
    catalog: Catalog, reason: str | None, topic: str | None, kept: dict, summary: ReplaySummary
) -> pa.Table:
    """The pending records of ``reason`` and ``topic`` this replay decides again: ``kept``'s
    codes are counted in ``summary.not_replayed`` and left out."""
    pending = catalog.quarantine.pending(reason, topic)
    codes = pending.column("reason_code")
    summary.not_replayed = dict(sorted(Counter(c for c in codes.to_pylist() if c in kept).items()))
    pending = pending.filter(pc.invert(pc.is_in(codes, value_set=pa.array(list(kept)))))
    summary.considered = pending.num_rows
    return pending


def _finish(
    space: Workspace,
    store: RunStore,
    plan: dict,
    anchor: Anchorer,
    progress: Progress,
    again: bool = False,
) -> list[dict]:
    """Publish a replay batch from its journaled plan: leaves, files, checkpoints anchored,
    catalog, quarantine resolved, ``done``; its anchored checkpoints. Run again after a crash
    at any point of it, it does each thing once: the commit finds rows already in their shards
    and the checkpoints it journaled before the anchor (``commit_and_anchor``). A plan with no
    receipts died before anything was committed: it is closed with nothing published (one an
    earlier version planned is left as it is, and named). ``again``: a batch an earlier replay
    left, finished only if its checkpoints were journaled (they may be anchored)."""
    batch_id, journal, layout = plan["batch_id"], store.journal, space.work
    if "receipts" not in plan:
        if "work" in plan:
            journal.set_state(batch_id, "done", records_read=0)
        else:  # planned by an earlier version, which journaled nothing to finish it from
            log.warning(
                "replay batch %d, planned by an earlier version, was not finished: compare its "
                "records with the published data", batch_id,
            )  # fmt: skip
        return []
    if again and "checkpoints" not in plan:
        # Nothing of it was anchored (its checkpoints are journaled before their anchor), and
        # a run may have published some of its keys since: closed, its records still pending,
        # taken afresh by this replay (finished, those keys were published twice). Its files
        # were never listed by any checkpoint: removed.
        for path in (f["path"] for r in plan["receipts"] for f in r["files"].values()):
            (layout.root / path).unlink(missing_ok=True)
            space.store.delete(path)
        journal.set_state(batch_id, "done", records_read=0)
        return []
    receipts, published = plan["receipts"], [tuple(key) for key in plan["published"]]
    for receipt in receipts:
        write_leaves(layout, receipt)
    publish_batch_files(space.store, layout, receipts)
    chain = chain_view(anchor)
    checkpoints = Checkpoints(space.store, chain)

    def committed(pending: list[dict]) -> None:  # before the anchor, as the sequencer does
        journal.update_plan(batch_id, {**plan, "checkpoints": pending})

    context = CommitContext(
        space.store, layout, chain, shared_keys(space), Protection(str(layout.private)),
        progress, committed, checkpoints,
    )  # fmt: skip
    anchored = commit_and_anchor(context, plan, receipts)  # the plan as journaled
    shards = {shard for _, shard in batch_shards(receipts)}
    record_anchored(store, checkpoints, batch_id, anchored, shards)
    store.catalog.quarantine.resolve(batch_id, published)
    store.catalog.refresh_views()
    journal.set_state(
        batch_id,
        "done",
        records_read=0,
        records_published=len(published),
        records_quarantined=-len(published),
    )
    return anchored


def not_replayable(signatures: str, nodes: NodeRegistryCache | None) -> dict[str, str]:
    """The reason codes this replay leaves in quarantine, each with why: those decided against
    the stream's state, and, unless it checks device signatures itself, the signature codes (a
    replay without a node registry would publish a forgery ingest refused)."""
    why = {
        code: f"{code} is decided against the stream's state, which a replay does not have: "
        "such records stay quarantined"
        for code in STATEFUL_CODES
    }
    if resolve_policy(signatures, nodes) != REQUIRED:
        for code in SIGNATURE_CODES:
            why[code] = (
                f"{code} records were refused by a device-signature check: replay them with "
                "--node-registry (and signatures required), or they stay quarantined"
            )
    return why


@dataclass(frozen=True)
class _Decoder:
    """How replayed records are standardized: format, header override, crash containment."""

    default_format: str | None
    override: bool
    crash_limit: int
    devices: Callable[[str], DeviceCheck]  # a topic's device signature checks

    def __call__(self, part: pa.RecordBatch, protect: Protection, what: str) -> Standardized:
        topic = part.column("topic")[0].as_py() if part.num_rows else ""
        devices = self.devices(topic)

        def decode(raw: pa.RecordBatch, refused: Refused) -> Standardized:
            result = standardize_chunk(
                raw, self.default_format, None, refused, devices, self.override
            )
            # Replayed records are judged on their own: a closed window's counts are never redone.
            return protect(raw, result, aggregates=False)

        return standardize_contained(part, decode, self.crash_limit, what)


def _land_replay(
    layout: DataLayout, batch_id: int, pending: pa.Table, decode: _Decoder
) -> tuple[list[dict], dict[tuple[str, int, int], str | None]]:
    """Standardize per topic-partition; write what passes. Outcome per record: None or code."""
    if "signature" not in pending.schema.names:  # quarantined before device signatures
        pending = pending.append_column("signature", pa.nulls(pending.num_rows, pa.string()))
    raw = pending.select(RAW_RECORD_SCHEMA.names).cast(RAW_RECORD_SCHEMA)
    protect = Protection(str(layout.private))  # replayed rows are published like any others
    receipts, outcome = [], {}
    groups = raw.group_by(["topic", "partition"]).aggregate([]).to_pylist()
    for group in sorted(groups, key=lambda g: (g["topic"], g["partition"])):
        mask = pc.and_(
            pc.equal(raw.column("topic"), group["topic"]),
            pc.equal(raw.column("partition"), group["partition"]),
        )
        part = raw.filter(mask).combine_chunks().to_batches()[0]
        result = decode(part, protect, f"replaying {group['topic']}/{group['partition']}")
        offsets = part.column("offset").to_pylist()
        key = (group["topic"], group["partition"])
        for offset in offsets:
            outcome[(*key, offset)] = None
        for rejects in (result.quarantined, result.suppressed):  # suppressed stay quarantined
            for offset, code in zip(
                rejects.column("offset").to_pylist(),
                rejects.column("reason_code").to_pylist(),
                strict=True,
            ):
                outcome[(*key, offset)] = code
        receipt = _write_replay_files(layout, batch_id, group, offsets, result.published)
        receipts.append({**receipt, "quality": result.quality})
    return receipts, outcome


def _write_replay_files(
    layout: DataLayout, batch_id: int, group: dict, offsets: list[int], published: dict
) -> dict:
    name = f"replay-b{batch_id:06d}-{group['topic']}-p{group['partition']:04d}"
    receipt = {
        "range": {
            "topic": group["topic"],
            "partition": group["partition"],
            "start": min(offsets),
            "end": max(offsets) + 1,
        },
        "files": {},
    }
    for dataset, rows in sorted(published.items()):
        if rows.num_rows:
            path = layout.data_file(dataset, name, group["topic"], group["partition"])
            receipt["files"][dataset] = {
                "path": layout.relative(path),
                "sha256": write_parquet(rows, path),
                "rows": rows.num_rows,
            }
    return receipt


def _drop_already_published(
    layout: DataLayout, catalog: Catalog, batch_id: int, receipts: list[dict], outcome: dict
) -> None:
    """Replayed records whose natural key is already published stay in quarantine. A shard is
    one topic's partition: its duplicates are that topic's records (another topic's record at
    the same partition and offset was dropped too)."""
    topic_of = {
        file["path"]: receipt["range"]["topic"]
        for receipt in receipts
        for file in receipt["files"].values()
    }
    duplicates: dict[str, set[tuple[int, int]]] = {}
    for (_dataset, shard), new in batch_shards(receipts).items():
        # No record_batch_keys here: a replay batch is not redone after a crash, so its keys
        # reach the index from the catalog once committed (at the next lookup).
        found = find_batch_duplicates(catalog, shard, batch_id, new)
        duplicates.setdefault(topic_of[new[0]], set()).update(found)
    for receipt in receipts:
        topic = receipt["range"]["topic"]
        drop_records(layout, receipt, duplicates.get(topic, set()))
        for partition, offset in duplicates.get(topic, set()):
            if (topic, partition, offset) in outcome:
                outcome[(topic, partition, offset)] = "duplicate"
