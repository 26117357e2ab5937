"""Around the event-time step: where a batch's state starts, the end-of-input flush, clean-up,
what is held (for ``rda status``) and a batch's counts once the step has decided.

The step itself is ``streaming/event_time.py``, run once per partition of a batch (each partition
has its own state); the state lives in ``sinks/state_store.py``. Partitions being independent, a
batch's are shared with a landing child of the run that is idle meanwhile
(``streaming/shared_step.py``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from pipelines import windows
from pipelines.kafka_source import Positions
from pipelines.protect import Protection
from proofs.shards import shard_id
from sinks.layout import DataLayout
from sinks.state_store import StateStore
from sinks.storage import Store
from streaming.batch import BatchSummary
from streaming.errors import SettingsError
from streaming.event_time import KEPT_KEY_ROWS, Outcome, ReadRaw, decide, iso
from streaming.journal import BatchJournal
from streaming.journal_fold import StateView
from streaming.leaf_files import PendingLeaves
from streaming.shared_step import Helper, Parts, records_read, share
from validators.event_time import WindowSettings
from validators.score import components_from_counts, score


def event_time_config(settings: Any) -> dict[str, Any]:
    """``RunConfig`` fields from ``rda run``'s settings (``streaming/config.py``)."""
    try:
        windows = WindowSettings(settings.window, settings.allowed_lateness)
    except ValueError as error:
        raise SettingsError(f"window / allowed lateness: {error}") from None
    return {"windows": windows, "flush_windows": settings.flush_windows}


def state_plans(view: StateView, plan: dict) -> dict[str, dict]:
    """Per partition of the batch (``str`` keys), where its state starts: journaled already
    (a redo), else after the partition's latest state (``view``: the journal's states)."""
    if "state" in plan:
        return plan["state"]
    infos = {}
    for partition in batch_partitions(plan):
        head, position = view.latest(partition)
        infos[str(partition)] = {"base": head, "position": position + 1, "partitions": [partition]}
    return infos


def batch_partitions(plan: dict) -> list[int]:
    """The partitions a batch decides: those it reads, and those a flush closes."""
    read = {r["partition"] for r in plan.get("ranges", [])}
    return sorted(read | set(plan.get("flush_partitions", [])))


def decide_batch(
    layout: DataLayout,
    topic: str,
    plan: dict,
    receipts: list[dict],
    step: tuple[ReadRaw, Protection, Store | None],
    journal: BatchJournal,
    helper: Helper | None = None,
) -> Outcome:
    """The event-time step of every partition of the batch; one outcome, in partition order.
    With a ``helper``, its child takes some of a large batch's partitions meanwhile
    (``streaming/shared_step.py``)."""
    view = journal.state_view(topic)  # one reading of the journal for every partition
    infos = state_plans(view, plan)
    plan = {**plan, "topic": topic}
    parts = {
        key: (info, [r for r in receipts if r["range"]["partition"] == int(key)])
        for key, info in sorted(infos.items(), key=lambda kv: int(kv[0]))
    }
    for key, (info, _) in parts.items():
        collect(layout, view, topic, int(key), keep_also=info.get("base"))
    sharing = share(helper, layout, plan, parts, step[1:])
    try:
        outcomes = _decide_here(layout, plan, parts, step, sharing.mine if sharing else None)
    except Exception:
        if sharing is not None:
            sharing.let_it_end()
        raise
    if sharing is not None:
        outcomes |= sharing.taken_back()
        left = [key for key in parts if key not in outcomes]  # the child's, if it failed
        outcomes |= _decide_here(layout, plan, {key: parts[key] for key in left}, step)
    for key, one in outcomes.items():
        # The keys it indexes are its shards' (a partition's rows are in its own shards).
        one.key_files = {shard_id(d, topic, int(key)): f for d, f in one.key_files.items()}
    merged = merge([outcomes[key] for key in parts])
    merged.state = infos
    return merged


def _decide_here(
    layout: DataLayout,
    plan: dict,
    parts: Parts,
    step: tuple[ReadRaw, Protection, Store | None],
    mine: Callable[[str], bool] | None = None,
) -> dict[str, Outcome]:
    """The step of the partitions ``parts`` (those ``mine`` claims, if given) in this process,
    in partition order; their leaf files hashed together."""
    read_raw, protection, store = step
    outcomes = {}
    leaves = PendingLeaves()
    for key, (info, receipts) in parts.items():
        if mine is not None and not mine(key):
            continue  # the helper's child has it
        outcomes[key] = decide(layout, plan, receipts, read_raw, protection, info, store, leaves)
        if _large(receipts):
            # A backlog's partition: what its step freed goes back to the system before the
            # next partition's is built (the allocator keeps it otherwise, and the process's
            # peak grows partition after partition: `rda run --once` over 221,567 records
            # peaked at 543 against 561 MB, and held 451 against 561 MB after the step).
            pa.default_memory_pool().release_unused()
    leaves.write()
    return outcomes


def _large(receipts: list[dict]) -> bool:
    """A partition of a backlog's batch: more records than ``KEPT_KEY_ROWS``."""
    return records_read(receipts) > KEPT_KEY_ROWS


def merge(outcomes: list[Outcome]) -> Outcome:
    """The outcomes of a batch's partitions as one (receipts in partition order; key files by
    shard)."""
    merged = Outcome(receipts=[])
    for one in outcomes:
        merged.receipts += one.receipts
        merged.records.update(one.records)
        merged.reasons.update(one.reasons)
        merged.flags.update(one.flags)
        merged.cells = (merged.cells[0] + one.cells[0], merged.cells[1] + one.cells[1])
        merged.quarantine_entries += one.quarantine_entries
        merged.private_files += one.private_files
        for shard, files in one.key_files.items():
            merged.key_files.setdefault(shard, []).extend(files)
        merged.key_rows.update(one.key_rows)
        merged.closed += one.closed
        merged.held_total += one.held_total
        if one.held_until is not None:
            merged.held_until = max(merged.held_until or one.held_until, one.held_until)
    return merged


def account(summary: BatchSummary, outcome: Outcome) -> None:
    """The batch's counts once the step has decided: read = published + quarantined +
    suppressed + held, where held is the change in records on hold."""
    if summary.published != outcome.records["staged"]:
        raise AssertionError(
            f"batch {summary.batch_id}: the stage passed {summary.published} records, the "
            f"event-time step decided {outcome.records['staged']}"
        )
    summary.published = outcome.records["published"]
    summary.quarantined += outcome.records["quarantined"]
    summary.suppressed += outcome.records["suppressed"]
    summary.held = outcome.records["held"]
    summary.reasons = dict(sorted((Counter(summary.reasons) + outcome.reasons).items()))
    summary.flags = {k: v for k, v in sorted(outcome.flags.items()) if v}
    summary.held_total, summary.held_until = outcome.held_total, outcome.held_until
    summary.windows_closed = outcome.closed
    total = summary.published + summary.quarantined + summary.suppressed + summary.held
    if summary.read != total:
        raise AssertionError(f"batch {summary.batch_id} does not reconcile: {summary.as_dict()}")
    null_cells, cells = outcome.cells
    issues = {**summary.reasons, **summary.flags}
    summary.quality_score = score(components_from_counts(summary.read, issues, null_cells, cells))


def collect(
    layout: DataLayout, view: StateView, topic: str, partition: int, keep_also: int | None
) -> None:
    """Remove the (local) state no batch can need: keep the latest, and those redos start from
    (``view``: the journal's states of the topic)."""
    keep = view.bases(partition) | {view.latest(partition)[0], keep_also}
    StateStore(layout, topic, partition).collect({b for b in keep if b is not None})


def flush_plan(
    plan: dict | None,
    topic: str,
    journal: BatchJournal,
    space: Any,
    positions: Positions,
    owner: tuple[set[int] | None, str] = (None, ""),
) -> dict | None:
    """End of input: a plan that reads every owned partition to its end closes every window of
    those partitions (``plan["flush"]``, ``plan["flush_partitions"]``); with nothing left to
    read but records held, a plan of no ranges does. ``space``: the worker's Workspace;
    ``owner``: the partitions it owns (None: all) and its id."""
    committed, ends = positions.committed, positions.ends
    owned, worker_id = owner
    mine = {p: end for p, end in ends.items() if owned is None or p in owned}
    reached = dict(journal.journal_ends(topic))
    for r in (plan or {}).get("ranges", []):
        reached[r["partition"]] = max(reached.get(r["partition"], 0), r["end"])
    caught_up = all(max(committed.get(p, 0), reached.get(p, 0)) >= end for p, end in mine.items())
    if not caught_up:
        return plan
    store = space.store
    open_ = [p for p in sorted(mine) if has_open_windows(space.work, journal, topic, p, store)]
    if plan is None:
        if not open_:
            return None
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        batch_id = journal.next_batch_id(worker_id)
        plan = {"batch_id": batch_id, "planned_at": now, "ranges": [], "chunks": []}
    return {**plan, "flush": True, "flush_partitions": open_}


def has_open_windows(
    layout: DataLayout, journal: BatchJournal, topic: str, partition: int, store: Store | None
) -> bool:
    """Whether the partition holds records, or open windows, that a flush would close."""
    head = journal.state_head(topic, partition)
    state = StateStore(layout, topic, partition, store)
    if head is None or not state.has_snapshot(head):
        return False
    doc, _ = state.read_snapshot(head)
    return bool(doc.get("windows"))


def held_report(
    layout: DataLayout,
    journal: BatchJournal,
    topics: dict[str, list[int]],
    store: Store | None = None,
) -> dict[str, Any]:
    """Per topic (over its partitions' states): records on hold, by window and until when;
    watermarks; the point through which every partition has closed its windows."""
    report = {}
    for topic, partitions in topics.items():
        docs = []
        for partition in partitions:
            head = journal.state_head(topic, partition)
            state = StateStore(layout, topic, partition, store)
            if head is not None and state.has_snapshot(head):
                docs.append(state.read_snapshot(head)[0])
        if docs:
            report[topic] = _held_of(docs)
    return report


def _held_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    settings = docs[0]["settings"]
    window_us = settings["window_s"] * 1_000_000
    lateness_us = settings["allowed_lateness_s"] * 1_000_000
    held: Counter = Counter()
    for doc in docs:
        for w, tally in doc["windows"].items():
            held[int(w)] += tally.get(windows.HELD_RECORDS, 0)
    open_windows = [
        {
            "window_start": iso(w),
            "records": n,
            "closes_at_watermark": iso(w + window_us + lateness_us),
        }
        for w, n in sorted(held.items())
    ]
    waiting = [w for w in open_windows if w["records"]]
    marks = {p: v for doc in docs for p, v in doc["watermarks"].items()}
    closed = [doc["closed_through"] for doc in docs]
    return {
        "held_records": sum(w["records"] for w in waiting),
        "held_until": waiting[-1]["closes_at_watermark"] if waiting else None,
        "windows": open_windows,
        "watermarks": {p: iso(v) for p, v in sorted(marks.items(), key=lambda kv: int(kv[0]))},
        "closed_through": iso(min(closed)) if None not in closed else None,
        "window_s": settings["window_s"],
        "allowed_lateness_s": settings["allowed_lateness_s"],
    }
