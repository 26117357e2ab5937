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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.anonymize import PseudonymKey
from pipelines.device_signatures import REASONS as SIGNATURE_CODES
from pipelines.device_signatures import REQUIRED
from pipelines.protect import Protection
from pipelines.windows import WINDOW_CLOSED
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from streaming import quality_pool
from streaming.batch import Anchorer, Progress
from streaming.batch_files import publish_batch_files
from streaming.checkpoints import Checkpoints
from streaming.commit import CommitContext, commit_and_anchor
from streaming.driver import chain_view
from streaming.errors import SettingsError
from streaming.keys import shared_keys
from streaming.node_cache import PLAN_KEY, NodeRegistryCache, device_check, resolve_policy
from streaming.replay_landing import (
    Decoder,
    conceal_released,
    drop_already_published,
    land_replay,
)
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
    decode = Decoder(request.default_format, request.override, request.crash_limit, checks)
    receipts, outcome = land_replay(layout, batch_id, pending, decode)
    drop_already_published(layout, catalog, batch_id, receipts, outcome)
    conceal_released(layout, receipts, PseudonymKey.load(layout.private))
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
