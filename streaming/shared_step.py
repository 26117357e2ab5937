"""A batch's event-time step shared with an idle landing child, partition by partition.

Partitions are independent (each has its own state and shards), and a partition's step is a
function of its base state and staged files: whichever process decides it writes the same
bytes. So this process and the run's idle landing child (``Helper``) share the partitions of a
batch as they go, by *claims*: before deciding a partition, a process claims it (a file created
exclusively in the step's claims folder), and one that finds it claimed goes on to the next.
This process takes the partitions in partition order, the child from the last: each decides
what it gets to first, so neither waits for a share fixed in advance. Measured on a backlog's
eight bounded batches, sequenced while the other child lands the next one: the child takes 1-2
of 4 partitions per batch, this process waits 1-7 ms for it, and the batches went from 0.55x to
0.65x one batch's rows/s (`rda bench --only end_to_end`).

If the child fails or dies, this process decides the partitions it had claimed after all (a
redo of a step writes the same files); if this process fails, it waits for the child's step to
end before the error leaves the batch (the batch is redone, and not beside a step still writing
its files).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipelines.kafka_source import KafkaSource, KafkaSpec, OffsetRange
from pipelines.protect import Protection
from sinks.layout import DataLayout
from sinks.storage import Store
from streaming.event_time import Outcome, decide
from streaming.lander import Lander
from streaming.scratch import scratch_root

log = logging.getLogger("rda.run")

# A partition is offered to the child from this many records: below it, the step of a stream's
# small batch costs less than sending it (a pickled job and its outcome, a Kafka client opened
# there if a record is quarantined).
OFFERED_FROM_RECORDS = 4_096

# (state plan, receipts) of each partition of a batch, by partition (``str`` keys).
Parts = dict[str, tuple[dict, list[dict]]]


@dataclass(frozen=True)
class Helper:
    """A kept child with nothing in flight while the batch is sequenced (one of the run's
    landers), and how it reads Kafka."""

    lander: Lander
    kafka: KafkaSpec


class Claims:
    """Which process decides each partition: the first to ``take`` it. A folder of empty files
    (one per partition taken) that both processes see."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    @classmethod
    def make(cls, layout: DataLayout, batch_id: int) -> Claims:
        """A new folder in this process's scratch folder (``streaming/scratch.py``: swept at
        the next start if this process dies with it)."""
        name = f"claims-{batch_id}-{uuid.uuid4().hex}"
        folder = scratch_root(layout) / str(os.getpid()) / name
        folder.mkdir(parents=True)
        return cls(folder)

    def take(self, key: str) -> bool:
        """Claim partition ``key``: True if no process had."""
        try:
            os.close(os.open(self.folder / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        return True

    def remove(self) -> None:
        """The folder, and this process's scratch folder if nothing else is left in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()


def offered(records: dict[str, int]) -> list[str]:
    """Of a batch's partitions (key: records), those the child may take, in the order it tries
    them (the last partition first): every one of at least ``OFFERED_FROM_RECORDS`` records, if
    there are two (with one, this process would only wait for the child)."""
    large = [key for key, count in records.items() if count >= OFFERED_FROM_RECORDS]
    return large[::-1] if len(large) >= 2 else []


@dataclass
class Sharing:
    """A step shared with the helper's child: the claims, the partitions offered to it."""

    helper: Helper
    claims: Claims
    offered: list[str]
    key: tuple[str, str, int]  # the step's, in the lander

    def mine(self, key: str) -> bool:
        """Whether this process decides partition ``key`` (claimed now if offered)."""
        return key not in self.offered or self.claims.take(key)

    def taken_back(self) -> dict[str, Outcome]:
        """The child's outcomes, by partition; none if it failed (the partitions it had
        claimed are then this process's to decide after all: ``event_state.decide_batch``)."""
        try:
            return dict(self.helper.lander.collect(self.key))
        except Exception as error:  # a crash of the child, or its error: this process decides
            log.warning("batch %d: the event-time step in the helper failed (%s); done here",
                        self.key[2], error)  # fmt: skip
            return {}
        finally:
            self.claims.remove()

    def let_it_end(self) -> None:
        """This process's step failed while the child's runs: wait for it (bounded by the
        lander's stall check) and drop its outcome."""
        with contextlib.suppress(Exception):  # its failure, if any, is not this batch's error
            self.helper.lander.collect(self.key)
        self.claims.remove()


def share(
    helper: Helper | None,
    layout: DataLayout,
    plan: dict,
    parts: Parts,
    step: tuple[Protection, Store | None],
) -> Sharing | None:
    """Offer the batch's large partitions to the helper's child; None if none is offered or
    the child cannot take the job (every partition is then decided here)."""
    if helper is None or helper.lander.busy:
        return None
    keys = offered({key: records_read(mine) for key, (_, mine) in parts.items()})
    if not keys:
        return None
    try:
        claims = Claims.make(layout, plan["batch_id"])
    except OSError as error:  # a full or read-only disk: every step is taken here
        log.warning("batch %d: no claims for a shared step (%s)", plan["batch_id"], error)
        return None
    protection, store = step
    work = [(key, parts[key][1], parts[key][0]) for key in keys]
    job = _ChildStep(helper.kafka, layout, plan, work, protection, store, claims.folder)
    key = ("event time", plan["topic"], plan["batch_id"])
    try:
        helper.lander.submit(key, job, f"event time of batch {plan['batch_id']}")
    except Exception as error:  # not sent (its child gone, say): every step is taken here
        log.warning("batch %d: no helper for the event-time step (%s)", plan["batch_id"], error)
        claims.remove()
        return None
    return Sharing(helper, claims, keys, key)


def records_read(receipts: list[dict]) -> int:
    """The records a partition's chunks read (their receipts' ``read``)."""
    return sum(r.get("read", 0) for r in receipts)


@dataclass(frozen=True)
class _ChildStep:
    """The job sent to the child: the offered partitions' steps, each if it claims it first
    (its leaf files written there); the outcomes by partition."""

    kafka: KafkaSpec
    layout: DataLayout
    plan: dict
    work: list[tuple[str, list[dict], dict]]
    protection: Protection
    store: Store | None
    claims: Path

    def __call__(self) -> list[tuple[str, Outcome]]:
        claims, source = Claims(self.claims), _LazySource(self.kafka)
        try:
            return [
                (key, decide(self.layout, self.plan, mine, source.read, self.protection, info,
                             self.store))
                for key, mine, info in self.work
                if claims.take(key)
            ]  # fmt: skip
        finally:
            source.close()


class _LazySource:
    """A Kafka client opened when a record is first read (only a quarantined record's is)."""

    def __init__(self, kafka: KafkaSpec) -> None:
        self.kafka = kafka
        self.source: KafkaSource | None = None

    def read(self, chunk: OffsetRange) -> pa.RecordBatch:
        if self.source is None:
            self.source = self.kafka.open()
        return self.source.read(chunk)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
