"""The micro-batch driver: plan → land → sequence (commit, anchor) → commit Kafka offsets.

A batch's plan (its offset ranges, and the worker that owns it) is journaled
(``streaming/journal.py``) before any work. Its chunks are landed in parallel with other
workers; its rows join their shards' logs and the dataset checkpoints are anchored by the
sequencer (``streaming/sequencer.py``), with no lock shared between workers, and Kafka offsets
are committed only after its checkpoints are anchored. A batch whose worker died is adopted by
another and redone from its journaled plan: file names and bytes are functions of the plan, so
the redo lands the same files, and a batch already anchored is only recorded.

Where the next batch of a partition starts is read from the journal (the furthest range any
worker has planned), not only from Kafka's committed offset: a range planned by a worker that is
still landing it is never planned twice, whichever worker the group gives the partition to.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.kafka_source import (
    KafkaSource,
    KafkaSpec,
    OffsetRange,
    Positions,
    range_name,
    read_on_from,
)
from pipelines.protect import Protection
from sinks.parquet import discard_landed, discard_staged, landed_receipts
from streaming import event_state, faults
from streaming.batch import Anchorer, BatchSummary, Progress, RunConfig
from streaming.checkpoints import ChainView
from streaming.journal import BatchJournal
from streaming.journal_fold import UNREAD_FROM
from streaming.keys import shared_keys
from streaming.landers import Landers
from streaming.node_cache import PLAN_KEY, PLAN_POLICY_KEY, planned_policy
from streaming.poison import land_ahead, land_contained, landing_ahead, lands_in_lander
from streaming.records_lost import LOST, warn_lost
from streaming.schedule import budgets_read, fair_shares
from streaming.sequencer import Sequencer
from streaming.shared_step import Helper
from streaming.store import Workspace, journaling, workspace
from streaming.workers import is_alive, this_worker

__all__ = ["BatchSummary", "RunConfig", "Worker", "run_batch"]
log = logging.getLogger("rda.run")

# Commits {partition: next offset} of a topic for the group; False: not now (e.g. a rebalance).
OffsetCommitter = Callable[[str, dict[int, int]], bool]


@dataclass(frozen=True)
class Worker:
    """The process running batches: its id, the partitions it owns, how it commits offsets."""

    id: str = field(default_factory=this_worker)
    owned: Callable[[str], set[int] | None] = lambda topic: None  # None: every partition
    commit: OffsetCommitter | None = None  # None: a plain commit for the configured group
    lander: Landers | None = None  # the run's kept landing children (None: a child per batch)
    # Waits until the run's chain is open (`rda run` opens it beside the first landing). Called
    # before sequencing, which reads the chain while it holds the writer lock that the chain's
    # binding to the data directory takes too.
    chain_ready: Callable[[], object] = lambda: None


def run_batch(
    config: RunConfig,
    source: KafkaSource,
    anchor: Anchorer,
    progress: Progress = lambda _: None,
    worker: Worker | None = None,
) -> BatchSummary | None:
    """Process one micro-batch end to end; None when there is nothing new to read."""
    worker = worker or Worker()
    space = workspace(config.data_dir, config.work_dir)
    owned = worker.owned(config.topic)
    clock = _Stopwatch()
    # A batch of this worker's to finish needs no position, nor any partition: one it planned
    # before the group took its partitions away is still its own (nobody else plans past a
    # live worker's batch), so it is finished here all the same.
    with journaling(space) as journal:
        entry = _unfinished(config, journal, space, worker, owned)
    if entry is None and owned is not None and not owned:
        return None  # the group has given this worker nothing of this topic (yet)
    if entry is None:
        positions = _kafka_positions(config, source)
        # Read before planning, like the positions: the registry as of now is what a new plan
        # checks device signatures against (its block is journaled with the plan).
        registry_block = config.nodes.refresh() if config.nodes is not None else None
        with journaling(space) as journal:
            entry = _take_or_plan(config, journal, space, worker, owned, positions, registry_block)
    clock.lap("plan")
    if entry is None:
        return None
    signer = shared_keys(space)
    protection = Protection(str(space.work.private), windows=config.windows, staged_only=True)
    batch_id, state = entry["batch_id"], entry["state"]
    crashes = 0
    ahead = landing_ahead(config, entry["plan"], worker.lander)  # planned by this process
    if state == "planned":
        crashes = land_contained(config, space, entry, source, protection, progress, worker.lander)
        clock.lap("land")
    if _lands_ahead(config, worker) and _full(config, entry["plan"]):
        try:
            _land_next(config, space, worker, owned, source, protection, batch_id)
        except Exception as error:  # a head start only: this batch goes on without it
            log.warning("batch %d: the next batch is not landed ahead: %s", batch_id, error)
        clock.lap("plan")
    worker.chain_ready()
    chain = chain_view(anchor)
    sequencer = Sequencer(
        config, space, source, chain, progress, protection, signer, _helper(config, worker)
    )
    summary = sequencer.sequence(entry, state == "planned")
    clock.lap("sequence")
    summary.resumed, summary.crashes = entry["resumed"] and not ahead, crashes
    ends = {r["partition"]: r["end"] for r in entry["plan"]["ranges"]}
    if not _commit_offsets(config, source, worker, ends):
        return None  # stays `anchored`: committed, and reported, on a later round
    faults.journaled("offsets_committed")
    with journaling(space) as journal:
        journal.set_state(batch_id, "done")  # done: Kafka offsets committed
        journal.compact(config.topic)  # its done entries into a segment, every so many
    faults.journaled("done")
    _discard_staged(space, entry["plan"])
    clock.lap("offsets")
    summary.steps = {**clock.laps, **summary.steps}
    return summary


def _discard_staged(space: Workspace, plan: dict) -> None:
    """The done batch's staged files and receipts go; one that cannot be removed is left (the
    batch is done whatever happens here) and said."""
    for chunk in plan["chunks"]:
        try:
            discard_staged(space.work, OffsetRange(**chunk))
        except (OSError, ValueError, KeyError) as error:
            log.warning("batch %d: its staged files stay: %s", plan["batch_id"], error)


def sweep_staged(space: Workspace) -> int:
    """Remove the staged files of every chunk that no unfinished batch names; how many chunks
    had theirs removed.

    They are a done batch's: left by a crash between its ``done`` and their removal, or by a
    version that never removed them (an upgraded work directory could hold a copy of all the
    data ever landed). The receipts are listed before the journal is read: a batch is journaled
    before it lands, so a chunk landing meanwhile is named by an unfinished batch by then."""
    landed = landed_receipts(space.work)
    if not landed:
        return 0
    with journaling(space) as journal:
        unfinished = journal.unfinished_batches()
    # A replay batch (``rda quarantine replay``) lands no chunk: its plan names none.
    chunks = [c for e in unfinished for c in e["plan"].get("chunks", ())]
    in_flight = {range_name(**c) for c in chunks}  # a topic named before names were checked too
    removed = 0
    for path in (path for name, path in landed.items() if name not in in_flight):
        try:
            discard_landed(space.work, path)
            removed += 1
        except (OSError, ValueError, KeyError) as error:
            log.warning("the staged files of %s stay: %s", path.stem, error)
    return removed


def chain_view(anchor: Anchorer) -> ChainView:
    """The anchorer, with the ``latest`` reads of the chain it anchors on."""
    if hasattr(anchor, "latest"):
        return anchor  # type: ignore[return-value]
    context = getattr(anchor, "__self__", None)
    if context is None or not hasattr(context, "latest"):
        raise TypeError("the anchorer must be a ChainContext's anchor (or have `latest`)")

    class _View:
        def __call__(self, checkpoints: list[dict]) -> list[dict]:
            return anchor(checkpoints)

        def latest(self, log: str):
            return context.latest(log)

        @property
        def in_process(self) -> bool:
            return bool(getattr(context, "in_process", False))

    return _View()


class _Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps[step] = self.laps.get(step, 0.0) + now - self._last
        self._last = now


def _commit_offsets(
    config: RunConfig, source: KafkaSource, worker: Worker, ends: dict[int, int]
) -> bool:
    """Commit the batch's range ends; a partition the group has already passed is left as is.

    A batch adopted late (its worker died after the anchor) may end before what another worker
    has committed since: committing it would move the group's position backwards.
    """
    committed = source.committed(config.group, config.topic)
    ends = {p: end for p, end in ends.items() if end > committed.get(p, 0)}
    if not ends:
        return True
    if worker.commit is not None:
        return worker.commit(config.topic, ends)
    source.commit(config.group, config.topic, ends)
    return True


def _kafka_positions(config: RunConfig, source: KafkaSource) -> Positions:
    """The group's committed offsets, the high watermarks, the topic's id and its partitions'
    log starts, asked before taking the lock."""
    topic = config.topic
    committed, ends = source.committed(config.group, topic), source.high_watermarks(topic)
    return Positions(committed, ends, source.topic_id(topic), source.log_starts(topic))


def _take_or_plan(
    config: RunConfig,
    journal: BatchJournal,
    space: Workspace,
    worker: Worker,
    owned: set[int] | None,
    positions: Positions,
    registry_block: int | None = None,
) -> dict | None:
    """An unfinished batch this worker should finish, or a new plan journaled before it runs
    (the positions, read before the journal's lock was taken, may be older than an unfinished
    batch found now: they are used only for a new plan)."""
    entry = _unfinished(config, journal, space, worker, owned)
    if entry is not None:
        return entry
    plan = _journal_new_plan(config, journal, space, worker, owned, positions, registry_block)
    if plan is None:
        return None
    return {"batch_id": plan["batch_id"], "plan": plan, "state": "planned", "resumed": False}


def _unfinished(
    config: RunConfig,
    journal: BatchJournal,
    space: Workspace,
    worker: Worker,
    owned: set[int] | None,
) -> dict | None:
    """An unfinished batch this worker should finish, adopted if need be, or None.

    A batch is this worker's to finish when it planned it, or when its worker is gone and this
    worker owns the batch's first partition (it is adopted: by one worker, however the group
    shared the dead worker's partitions). A batch of a live worker is left alone.
    """
    for entry in journal.unfinished_batches(config.topic):
        if entry["owner"] != worker.id:
            first = min(r["partition"] for r in entry["plan"]["ranges"])
            if owned is not None and first not in owned:
                continue
            if is_alive(entry["owner"], space.store):
                continue
            journal.set_owner(entry["batch_id"], worker.id)
            log.info(
                "adopting batch %d of %s (%s) from worker %s, which is gone",
                entry["batch_id"],
                config.topic,
                entry["state"],
                entry["owner"],
                extra={"event": "adopt", "batch_id": entry["batch_id"], "from": entry["owner"]},
            )
        return {**entry, "resumed": True}
    return None


def _journal_new_plan(
    config: RunConfig,
    journal: BatchJournal,
    space: Workspace,
    worker: Worker,
    owned: set[int] | None,
    positions: Positions,
    registry_block: int | None,
) -> dict | None:
    """The next batch's plan, journaled (``planned``) before anything of it runs; None when
    there is nothing to read."""
    plan = _new_plan(config, journal, owned, positions, worker.id)
    if config.flush_windows:  # end of input: the batch that catches up closes every window
        plan = event_state.flush_plan(
            plan, config.topic, journal, space, positions, (owned, worker.id)
        )
    if plan is None:
        return None
    if registry_block is not None:
        plan[PLAN_KEY] = registry_block
    plan[PLAN_POLICY_KEY] = planned_policy(config.signatures, config.nodes)
    journal.record_plan(plan["batch_id"], config.topic, plan, owner=worker.id)
    faults.journaled("planned")
    warn_lost(plan["batch_id"], plan.get(LOST, []), "as it was planned")
    return plan


def _helper(config: RunConfig, worker: Worker) -> Helper | None:
    """A landing child of the run: part of a large batch's event-time step runs there, beside
    this process's, if it has nothing in flight then (one that lands the next batch ahead has:
    ``shared_step.share`` looks when it sends the step)."""
    if not lands_in_lander(config, worker.lander):
        return None
    landers = worker.lander
    kafka = KafkaSpec(config.bootstrap, config.kafka_client, config.kafka_timeout)
    return Helper(landers.idle(), kafka)


def _lands_ahead(config: RunConfig, worker: Worker) -> bool:
    """Batches are landed by the run's kept child, so the next one can land beside this one's
    sequencing (not at the end of input: that batch's plan closes every window)."""
    return lands_in_lander(config, worker.lander) and not config.flush_windows


def _full(config: RunConfig, plan: dict) -> bool:
    """The batch took its whole budget: a backlog remains."""
    return sum(r["end"] - r["start"] for r in plan["ranges"]) >= config.max_batch_records


def _land_next(
    config: RunConfig,
    space: Workspace,
    worker: Worker,
    owned: set[int] | None,
    source: KafkaSource,
    protection: Protection,
    batch_id: int,
) -> None:
    """Under a backlog: plan the next batch and start landing it in the lander, which would
    otherwise wait while this process sequences batch ``batch_id`` (two processes, two cores).

    The plan is journaled as any other: if this process dies, the next start lands it again.
    Its event time is decided when it is sequenced, after this batch, as ever. Only when this
    batch is the worker's one unfinished batch of the topic, so batches are still taken in
    order."""
    assert worker.lander is not None
    positions = _kafka_positions(config, source)
    registry_block = config.nodes.refresh() if config.nodes is not None else None
    with journaling(space) as journal:
        unfinished = [e["batch_id"] for e in journal.unfinished_batches(config.topic)]
        if unfinished != [batch_id]:
            return
        plan = _journal_new_plan(config, journal, space, worker, owned, positions, registry_block)
    if plan is not None:
        land_ahead(config, space.work, plan, protection, worker.lander)


def _undecided_elsewhere(journal: BatchJournal, topic: str, worker_id: str) -> set[int]:
    """Partitions of batches another worker planned and has not sequenced yet: their event-time
    state is decided in stream order, so this worker plans nothing more of them until then
    (after a rebalance, the old owner may still be landing its last batch of a partition)."""
    return {
        r["partition"]
        for entry in journal.unfinished_batches(topic)
        if entry["owner"] != worker_id and entry["state"] == "planned"
        for r in entry["plan"]["ranges"]
    }


def _new_plan(
    config: RunConfig,
    journal: BatchJournal,
    owned: set[int] | None,
    positions: Positions,
    worker_id: str,
) -> dict | None:
    """Offset ranges from where each owned partition stands to (at most) its high watermark,
    within the batch's budget: under a backlog, a few partitions a batch, in turn
    (``streaming/schedule.py``);
    ``RecordsLost`` if reading on from there would skip records (``read_on_from``)."""
    planned, read_ids = journal.planned(config.topic)
    read_on = read_on_from(config.topic, positions, planned, read_ids, config.accept_retention_loss)
    waiting = _undecided_elsewhere(journal, config.topic, worker_id)
    ends = positions.ends
    starts = {
        p: read_on.starts[p] for p in ends if (owned is None or p in owned) and p not in waiting
    }
    batch_id = journal.next_batch_id(worker_id)
    backlogs = {p: max(0, ends[p] - start) for p, start in starts.items()}
    turn = budgets_read(starts, config.max_batch_records)
    shares = fair_shares(backlogs, config.max_batch_records, config.min_partition_share, turn)
    ranges = [
        OffsetRange(config.topic, p, starts[p], starts[p] + shares[p])
        for p in sorted(shares)
        if shares[p]
    ]
    if not ranges:
        return None
    # Offsets retention deleted are the plan's that reads on past them (its range starts at the
    # log's start), so each is recorded once; a partition not planned now records them later.
    lost = [r.as_dict() for r in read_on.lost if shares.get(r.partition)]
    unread = [
        {"partition": p, "offset": start}
        for p, start in sorted(starts.items())
        if p in read_on.first_seen and not shares.get(p)
    ]
    return {
        "batch_id": batch_id,
        "planned_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ranges": [r.as_dict() for r in ranges],
        "chunks": [c.as_dict() for r in ranges for c in r.split(config.max_chunk_records)],
        "max_chunk_bytes": config.max_chunk_bytes,  # a chunk holding more is split when landed
        "wire_format": config.wire_format,
        **({"topic_id": positions.topic_id} if positions.topic_id is not None else {}),
        **({LOST: lost} if lost else {}),
        **({UNREAD_FROM: unread} if unread else {}),
    }
