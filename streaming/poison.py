"""Crash loops: a batch whose landing kills the worker N times is bisected, never retried forever.

A batch is landed in a forked child process (``streaming/isolation.py``). When the child dies —
a segfault in a parser, the OOM killer — the crash is counted in the batch's journaled plan, so
the count survives a restart of ``rda run`` too. Below ``crash_limit`` crashes the landing is
simply tried again (a crash may have had nothing to do with the data). At the limit, the driver
reads each chunk of the batch itself (reading is not parsing) and decodes slices of it in
further children, halving every slice that kills its child, until the records that do it are
alone. Their offsets go into the plan as ``poison``; the landing is tried again, and those
records are quarantined unread as ``crashed_worker`` (``pipelines/poison.py``), raw bytes kept
privately — one log line and one metric each — while every other record is published as usual.
The plan is what a redo reads, so any redo, by any worker, lands the same files.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from itertools import pairwise
from typing import Any

import pyarrow as pa

from pipelines.device_signatures import DeviceCheck
from pipelines.graph import Refused, standardize_chunk
from pipelines.kafka_source import KafkaSource, OffsetRange, RangeTooLarge, RecordsLost
from pipelines.poison import crashed_worker_reason
from pipelines.protect import Protection
from pipelines.standardize import Standardized
from sinks.layout import DataLayout
from streaming.batch import Progress, RunConfig
from streaming.errors import CrashLoop
from streaming.isolation import STALL_S, WorkerCrashed, run_isolated
from streaming.landers import JobOf, Landers, default_processes
from streaming.node_cache import device_check
from streaming.records_lost import accept_at_read
from streaming.retry import causes
from streaming.sequencer import land_chunks, landing_message, refused_of
from streaming.store import Workspace, writing

log = logging.getLogger("rda.run")


def land_contained(
    config: RunConfig,
    space: Workspace,
    entry: dict,
    source: KafkaSource,
    protection: Protection,
    progress: Progress,
    lander: Landers | None = None,
) -> int:
    """Land the batch's chunks so that no record can stop it; the number of worker crashes.
    ``lander``: the run's kept landing children (None: a child for this batch alone)."""
    batch_id, plan = entry["batch_id"], entry["plan"]
    config = _shared_cluster(config)
    crashes = 0
    while True:
        progress(landing_message(plan))
        try:
            if lander is not None and landing_ahead(config, plan, lander):
                lander.collect(_landing_key(config, plan))
            else:
                _land_once(config, space.work, plan, protection, source, lander)
            return crashes
        except Exception as error:
            if isinstance(error, RecordsLost) and config.accept_retention_loss:
                entry["plan"] = plan  # with its crashes so far
                plan = accept_at_read(space, config.topic, entry, source, error)
                continue
            if (too_large := _too_large(error)) is not None:
                plan = _split_chunk(space, batch_id, too_large)
                continue
            crash = crash_of(error)
            if crash is None:
                raise
            crashes += 1
            plan = _count_crash(space, batch_id, crash)
        log.warning(
            "batch %d: the worker died while landing %s (%s), crash %d of %d before the batch "
            "is bisected",
            batch_id, _ranges(plan), crash.how, plan["crashes"], config.crash_limit,
            extra={"event": "worker_crash", "batch_id": batch_id, "how": crash.how},
        )  # fmt: skip
        if plan["crashes"] >= config.crash_limit:
            found = find_poison(config, plan, source, protection, progress)
            if not found:
                raise CrashLoop(
                    f"batch {batch_id} ({_ranges(plan)}) killed the worker {plan['crashes']} "
                    f"times ({crash.how}) but no single record of it does: the process may be "
                    "running out of memory (see the kernel log); try a smaller "
                    "--max-chunk-records"
                )
            plan = _record_poison(space, batch_id, config.topic, found, crash.how)


def _land_once(
    config: RunConfig,
    layout: DataLayout,
    plan: dict,
    protection: Protection,
    source: KafkaSource,
    lander: Landers | None = None,
) -> None:
    what = f"landing batch {plan['batch_id']}"
    if lands_in_lander(config, lander):
        lander.run(plan, _landing_jobs(config, layout, plan, protection), what, stall_s(config))
    elif _isolated(config):
        # The child reads Kafka with a client of its own: forked beside this process's open
        # one, it may inherit a lock one of librdkafka's threads held (streaming/isolation.py;
        # seen once in CI: a child that read nothing for the whole timeout). Reopened on use.
        source.close()
        land = functools.partial(land_chunks, config, layout, plan, _no_progress, protection)
        run_isolated(land, what, stall_s(config))
    else:  # Dask's workers are processes already: a crash there comes back as KilledWorker
        land_chunks(config, layout, plan, _no_progress, protection)


def _no_progress(_message: str) -> None:
    """A landing's progress lines: the driver has reported the batch already."""


def lands_in_lander(config: RunConfig, lander: Landers | None) -> bool:
    """Whether ``config``'s batches land in the run's kept children (``lander``)."""
    return lander is not None and _isolated(config)


def stall_s(config: RunConfig) -> float:
    """How long a landing child may use no CPU before it is taken for stuck: a read waits up to
    ``kafka_timeout`` for the broker without any (``streaming/isolation.py``)."""
    return max(STALL_S, 3 * config.kafka_timeout)


def _isolated(config: RunConfig) -> bool:
    """Landing runs in a child of this process (FnApiRunner works in-process)."""
    return config.isolate and config.runner == "fnapi"


def landing_process(processes: int | None = None) -> Landers:
    """The landing children for the batches of one run (``streaming/landers.py``; None: one
    per core, up to two). Only for the length of a run: a child keeps the process's state as it
    was when forked (its environment, adapters, caches), which a run does not change but tests
    and callers between runs may."""
    return Landers(_child_step, default_processes() if processes is None else processes)


def land_ahead(
    config: RunConfig, layout: DataLayout, plan: dict, protection: Protection, lander: Landers
) -> None:
    """Start landing a planned batch in the landers and return: the parent sequences the
    batch before it meanwhile; ``land_contained`` takes the outcome (a crash counted as any
    other)."""
    what = f"landing batch {plan['batch_id']}"
    jobs = _landing_jobs(config, layout, plan, protection)
    lander.submit(_landing_key(config, plan), plan, jobs, what, stall_s(config), share=False)


def landing_ahead(config: RunConfig, plan: dict, lander: Landers | None) -> bool:
    """The batch's landing was started ahead (``land_ahead``) and not collected yet."""
    return lander is not None and lander.submitted(_landing_key(config, plan))


def _landing_key(config: RunConfig, plan: dict) -> tuple[str, int]:
    return config.topic, plan["batch_id"]


def _landing_jobs(
    config: RunConfig, layout: DataLayout, plan: dict, protection: Protection
) -> JobOf:
    """A landing's arguments for a kept child, for any share of the plan. Only picklable ones
    travel, so the node registry (a chain connection) stays here and the batch's check of it
    goes instead."""
    devices = device_check(config.signatures, config.nodes, plan, config.topic)
    shared = replace(config, nodes=None)
    return lambda share: (shared, layout, share, protection, devices)


def _child_step(job: tuple[RunConfig, DataLayout, dict, Protection, DeviceCheck] | Callable) -> Any:
    """A step of a kept child: a batch's landing, or a share of it (its arguments,
    ``_landing_jobs``), or another picklable step (the event-time step of some of a batch's
    partitions: ``event_state``)."""
    if callable(job):
        return job()
    config, layout, plan, protection, devices = job
    land_chunks(config, layout, plan, _no_progress, protection, devices)
    return None


def _shared_cluster(config: RunConfig) -> RunConfig:
    """With the Dask runner, the local cluster is started here, before any fork."""
    if config.runner != "dask" or config.dask_scheduler:
        return config
    from pipelines.dask_cluster import local_scheduler_address

    return replace(config, dask_scheduler=local_scheduler_address())


def crash_of(error: BaseException) -> WorkerCrashed | None:
    """The worker crash behind ``error``: our child's death, or Dask's ``KilledWorker``."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, WorkerCrashed):
            return current
        if type(current).__name__ == "KilledWorker":
            return WorkerCrashed("landing", f"a Dask worker was killed: {current}"[:200])
        current = current.__cause__ or current.__context__
    return None


def find_poison(
    config: RunConfig,
    plan: dict,
    source: KafkaSource,
    protection: Protection,
    progress: Progress = lambda _: None,
) -> list[tuple[int, int]]:
    """(partition, offset) of every record of the plan whose decoding kills a child process."""
    refused = refused_of(plan)
    wire_format = plan.get("wire_format", config.wire_format)
    found: list[tuple[int, int]] = []
    for item in plan["chunks"]:
        chunk = OffsetRange(**item)
        progress(f"batch {plan['batch_id']}: bisecting {chunk.name} for the record that crashes")
        raw = source.read(chunk)

        def decode(part: pa.RecordBatch) -> None:
            standardize_chunk(part, wire_format, protection, refused)  # the result stays there

        offsets = raw.column("offset").to_pylist()
        crashing = bisect(0, raw.num_rows, lambda a, b, r=raw, d=decode: _survives(r, a, b, d))
        found += [(chunk.partition, offsets[i]) for i in crashing]
    return found


def bisect(start: int, stop: int, survives: Callable[[int, int], bool]) -> list[int]:
    """The positions in ``[start, stop)`` that do not survive alone, halving what fails."""
    if stop <= start or survives(start, stop):
        return []
    if stop - start == 1:
        return [start]
    middle = (start + stop) // 2
    return bisect(start, middle, survives) + bisect(middle, stop, survives)


def _survives(
    raw: pa.RecordBatch, start: int, stop: int, decode: Callable[[pa.RecordBatch], None]
) -> bool:
    """Whether a child decodes records ``[start, stop)`` of ``raw`` without dying."""
    part = raw.slice(start, stop - start)
    first, last = raw.column("offset")[start].as_py(), raw.column("offset")[stop - 1].as_py()
    try:
        run_isolated(lambda: decode(part), f"decoding offsets {first}..{last}")
    except WorkerCrashed:
        return False
    except Exception:  # a failure that is no crash is not this search's business
        return True
    return True


def _too_large(error: BaseException) -> RangeTooLarge | None:
    """The ``RangeTooLarge`` behind ``error`` (a Dask worker's comes back as a cause)."""
    return next((c for c in causes(error) if isinstance(c, RangeTooLarge)), None)


def _split_chunk(space: Workspace, batch_id: int, too_large: RangeTooLarge) -> dict:
    """Replace the plan's chunk whose records passed the byte budget by its parts (each within
    the budget, or one record alone: ``ReadBudget``), journaled, so any redo lands the same
    chunks. A landing stops at the first such chunk: another one is split on the next try."""
    chunk = too_large.offsets
    bounds = [chunk.start, *too_large.splits, chunk.end]
    parts = [OffsetRange(chunk.topic, chunk.partition, a, b) for a, b in pairwise(bounds)]
    with writing(space) as store:
        plan = store.journal.batch(batch_id)["plan"]
        chunks = [OffsetRange(**c) for c in plan["chunks"]]
        if chunk not in chunks:  # the error names no chunk of this plan: not ours to split
            raise too_large
        where = chunks.index(chunk)
        chunks[where : where + 1] = parts
        plan["chunks"] = [c.as_dict() for c in chunks]
        store.journal.update_plan(batch_id, plan)
    log.warning(
        "batch %d: %s holds more than %s bytes of records: split into %d work items",
        batch_id, chunk.name, f"{too_large.max_bytes:,}", len(parts),
        extra={"event": "chunk_split", "batch_id": batch_id, "partition": chunk.partition,
               "offset": chunk.start},
    )  # fmt: skip
    return plan


def _count_crash(space: Workspace, batch_id: int, crash: WorkerCrashed) -> dict:
    with writing(space) as store:
        plan = store.journal.batch(batch_id)["plan"]
        plan["crashes"] = plan.get("crashes", 0) + 1
        plan["last_crash"] = crash.how
        store.journal.update_plan(batch_id, plan)
    return plan


def _record_poison(
    space: Workspace, batch_id: int, topic: str, found: list[tuple[int, int]], how: str
) -> dict:
    with writing(space) as store:
        plan = store.journal.batch(batch_id)["plan"]
        code, reason = crashed_worker_reason(plan["crashes"], how)
        poison = plan.get("poison", [])
        for partition, offset in found:
            poison.append(
                {"partition": partition, "offset": offset, "code": code, "reason": reason}
            )
            log.error(
                "batch %d: offset %d of %s partition %d killed the worker (%s, %d crash(es)); "
                "quarantined unread as crashed_worker, raw bytes kept privately",
                batch_id, offset, topic, partition, how, plan["crashes"],
                extra={"event": "crashed_worker", "batch_id": batch_id, "topic": topic,
                       "partition": partition, "offset": offset},
            )  # fmt: skip
        plan["poison"] = sorted(poison, key=lambda p: (p["partition"], p["offset"]))
        plan["crashes"] = 0  # a new loop, if any, is counted afresh
        store.journal.update_plan(batch_id, plan)
    return plan


def _ranges(plan: dict[str, Any]) -> str:
    return ", ".join(
        f"{r['topic']}/{r['partition']} [{r['start']}, {r['end']})" for r in plan["ranges"]
    )


def standardize_contained(
    raw: pa.RecordBatch,
    decode: Callable[[pa.RecordBatch, Refused], Standardized],
    crash_limit: int,
    what: str,
) -> Standardized:
    """``decode(raw, refused)`` in a child; a batch that kills it ``crash_limit`` times is
    bisected and decoded again with the records that do it refused (``crashed_worker``).

    For ``rda quarantine replay``: it holds its records in memory, so no journal is needed.
    """
    offsets = raw.column("offset").to_pylist()
    partitions = raw.column("partition").to_pylist()
    for attempt in range(1, crash_limit + 1):
        try:
            return run_isolated(lambda: decode(raw, {}), what)
        except WorkerCrashed as crash:
            how = crash.how
            log.warning("%s: the worker died (%s), crash %d of %d", what, how, attempt, crash_limit)
    crashing = bisect(0, raw.num_rows, lambda a, b: _survives(raw, a, b, lambda p: decode(p, {})))
    if not crashing:
        raise CrashLoop(f"{what} killed the worker {crash_limit} times, but no single record does")
    reason = crashed_worker_reason(crash_limit, how)
    refused = {(partitions[i], offsets[i]): reason for i in crashing}
    for i in crashing:
        log.error(
            "%s: offset %d of partition %d killed the worker (%s, %d crash(es)); kept in "
            "quarantine as crashed_worker", what, offsets[i], partitions[i], how, crash_limit,
            extra={"event": "crashed_worker", "partition": partitions[i], "offset": offsets[i]},
        )  # fmt: skip
    return run_isolated(lambda: decode(raw, refused), what)
