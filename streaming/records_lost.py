"""Records the broker deleted before the stream read them, skipped because the operator said so.

By default a stream stops on them (``RecordsLost``, ``pipelines/kafka_source.py``). With
``--accept-retention-loss`` it reads on from the partition's log start instead, and the
skipped offsets go into the batch's plan, under ``lost`` — journaled before anything is read,
and published in the ``batch`` section of each manifest the batch writes — so the gap between
two batches' ranges is explained where auditors read, and a redo reads the same plan.

A plan records them when it is made (the stream stood below the log start), or when its read
finds them deleted since (a plan journaled before a long outage): its ranges then start at the
log start (``accept_deleted``), and a range wholly deleted keeps only its end. Only retention
is accepted: a recreated or truncated log would have the stream read offsets again whose keys
published records already hold.
"""

from __future__ import annotations

import logging

from pipelines.kafka_source import KafkaSource, OffsetRange, RecordsLost, deleted_part
from sinks.parquet import discard_staged
from streaming.store import Workspace, writing

log = logging.getLogger("rda.run")
LOST = "lost"  # the plan's member: the offset ranges (topic, partition, start, end) skipped


def lost_records(plan: dict) -> int:
    """How many offsets the plan skipped as deleted."""
    return _offsets_in(plan.get(LOST, []))


def _offsets_in(ranges: list[dict]) -> int:
    return sum(r["end"] - r["start"] for r in ranges)


def warn_lost(batch_id: int, lost: list[dict], when: str) -> None:
    """One warning line for the offsets a batch skips, and why it may."""
    if not lost:
        return
    offsets = "; ".join(f"{r['topic']}.p{r['partition']} {r['start']}-{r['end'] - 1}" for r in lost)
    log.warning(
        "batch %d: records the broker deleted before this stream read them (retention), found "
        "%s: %s; read on from the log's start (--accept-retention-loss), recorded in the "
        "batch's plan and manifests",
        batch_id, when, offsets,
        extra={"event": "records_lost", "batch_id": batch_id, "lost": _offsets_in(lost)},
    )  # fmt: skip


def accept_deleted(plan: dict, log_starts: dict[int, int]) -> tuple[dict, list[dict]]:
    """The plan with each range's start moved up to its partition's log start (a range wholly
    deleted keeps only its end), its chunks cut to match, and the offsets skipped added to its
    ``lost``; with the ranges skipped now (none: nothing of the plan was deleted)."""
    moved: list[dict] = []
    ranges = []
    for r in plan["ranges"]:
        deleted = deleted_part(OffsetRange(**r), log_starts.get(r["partition"], 0))
        if deleted is not None:
            moved.append(deleted.as_dict())
        ranges.append({**r, "start": r["start"] if deleted is None else deleted.end})
    if not moved:
        return plan, []
    firsts = {r["partition"]: r["start"] for r in ranges}
    chunks = []
    for chunk in plan["chunks"]:  # the others keep their names: their landed files stay good
        start = max(chunk["start"], firsts[chunk["partition"]])
        if start < chunk["end"]:
            chunks.append({**chunk, "start": start})
    updated = {**plan, "ranges": ranges, "chunks": chunks, LOST: [*plan.get(LOST, []), *moved]}
    return updated, moved


def accept_at_read(
    space: Workspace, topic: str, entry: dict, source: KafkaSource, error: RecordsLost
) -> dict:
    """The batch's plan, journaled again with the offsets retention deleted since it was made
    skipped (``entry`` takes it too); ``error`` again if none of the plan's were (another loss,
    never accepted)."""
    plan = entry["plan"]
    updated, moved = accept_deleted(plan, source.log_starts(topic))
    if not moved:
        raise error
    with writing(space) as store:
        store.journal.update_plan(entry["batch_id"], updated)
    for chunk in dropped_chunks(plan, updated):  # a partial landing's, under their old names
        try:
            discard_staged(space.work, chunk)
        except (OSError, ValueError, KeyError) as failed:  # swept at the next start otherwise
            log.warning(
                "batch %d: %s's staged files stay: %s", entry["batch_id"], chunk.name, failed
            )
    entry["plan"] = updated
    warn_lost(entry["batch_id"], moved, "by its read, after its plan")
    return updated


def dropped_chunks(before: dict, after: dict) -> list[OffsetRange]:
    """The chunks of ``before`` that ``after`` no longer names (their landed files are stale)."""
    kept = {OffsetRange(**c) for c in after["chunks"]}
    return [OffsetRange(**c) for c in before["chunks"] if OffsetRange(**c) not in kept]
