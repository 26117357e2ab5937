"""The run's landing children: a large batch's chunks shared between them, one share each.

A batch's chunks are independent work items, each landed into files named after its own offset
range (``pipelines/graph.py``): which process lands a chunk changes no byte of the output. One
landing child works on one core (its Python holds the GIL; librdkafka and Arrow add little
beside it), so where a second core is free a backlog lands in about two thirds of the time in
two children (measured: 221,567 records in 6 chunks, 2.37-2.47 s in one child, 1.72-1.94 s in
two; the whole batch, landed and sequenced, 2.6 s against 3.3-3.4 s).

``Landers`` keeps ``processes`` kept children (``streaming/lander.py``), each with its own
spawner, and gives each a share of a batch of at least ``SHARED_FROM_RECORDS`` records that
this process waits for: whole chunks, balanced by their number of offsets. A smaller batch
lands in the first child alone (a second Beam pipeline would cost more than its share of the
work saves), and so does a batch landed ahead while this process sequences the one before.

An idle child lends itself to the event-time step of the batch being sequenced
(``streaming/shared_step.py``). A share's failure fails the batch's landing as one child's would:
its crash is counted (``streaming/poison.py``), and the whole batch is landed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import Any

from streaming.isolation import STALL_S, WorkerCrashed
from streaming.lander import Lander

# Below this many offsets a batch lands in one child (a Beam pipeline costs ~40-60 ms to build
# and start, and a streaming batch of a few thousand records lands in ~0.1 s).
SHARED_FROM_RECORDS = 20_000
# A plan's landing job for one share of its chunks (the share as a plan of its own).
JobOf = Callable[[dict], Any]


def default_processes() -> int:
    """Two landing children where this process may use two cores or more, else one: the driver
    waits while a batch lands, and the quality worker's jobs come after the anchor."""
    return 2 if len(os.sched_getaffinity(0)) >= 2 else 1


class Landers:
    """``processes`` kept landing children; the first is ``lead``."""

    def __init__(self, work: Callable[[Any], Any], processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("a run needs at least one landing process")
        self.children = [Lander(work) for _ in range(processes)]
        self._shared: dict[Hashable, int] = {}  # key: how many children have a share of it

    @property
    def lead(self) -> Lander:
        """The first child: it lands every batch, or its share of it."""
        return self.children[0]

    @property
    def busy(self) -> bool:
        return any(child.busy for child in self.children)

    def start(self) -> None:
        """Fork every child now, while this process has one thread (``streaming/lander.py``)."""
        for child in self.children:
            child.start()

    def close(self) -> None:
        self._shared.clear()
        for child in self.children:
            child.close()

    def shares(self, plan: dict) -> list[dict]:
        """The plan as one plan per child that lands part of it: whole chunks, the largest
        first to the child with the fewest offsets so far, each share in the plan's order."""
        chunks = plan["chunks"]
        records = sum(chunk["end"] - chunk["start"] for chunk in chunks)
        count = min(len(self.children), len(chunks))
        if count < 2 or records < SHARED_FROM_RECORDS:
            return [plan]
        loads, picked = [0] * count, [[] for _ in range(count)]
        by_size = sorted(range(len(chunks)), key=lambda i: chunks[i]["start"] - chunks[i]["end"])
        for index in by_size:  # ties go to the share with fewer chunks: none stays empty
            lightest = min(range(count), key=lambda i: (loads[i], len(picked[i])))
            picked[lightest].append(index)
            loads[lightest] += chunks[index]["end"] - chunks[index]["start"]
        return [{**plan, "chunks": [chunks[i] for i in sorted(share)]} for share in picked]

    def submit(
        self,
        key: Hashable,
        plan: dict,
        job_of: JobOf,
        what: str,
        stall_s: float = STALL_S,
        share: bool = True,
    ) -> None:
        """Start landing ``plan``, a share in each child (``shares``), and return. Without
        ``share``, the first child lands it all: for a batch landed ahead, while this process
        sequences the one before on the other core (measured: 8 batches of 25,765 records,
        52,309-52,652 rows/s with two children landing ahead against 55,363-58,521 with one)."""
        shares = self.shares(plan) if share else [plan]
        for child, part in zip(self.children, shares, strict=False):
            child.submit(key, job_of(part), what, stall_s)
        self._shared[key] = len(shares)

    def idle(self) -> Lander:
        """A child with no step in flight (the first such), else the first: the event-time
        step's helper while this process sequences a batch."""
        return next((child for child in self.children if not child.busy), self.lead)

    def submitted(self, key: Hashable) -> bool:
        return key in self._shared

    def collect(self, key: Hashable) -> list[Any]:
        """Wait for every share of ``key``'s landing; their outcomes, in share order. The first
        crash among their failures is raised (the batch's crash count and bisection go by it),
        else the first error."""
        count = self._shared.pop(key)
        outcomes, errors = [], []
        for child in self.children[:count]:
            try:
                outcomes.append(child.collect(key))
            except Exception as error:  # the other shares are collected all the same
                errors.append(error)
        if errors:
            crashes = [e for e in errors if isinstance(e, WorkerCrashed)]
            raise (crashes or errors)[0]
        return outcomes

    def run(self, plan: dict, job_of: JobOf, what: str, stall_s: float = STALL_S) -> list[Any]:
        """Land ``plan`` in the children and wait for it; each share's outcome."""
        key = object()
        self.submit(key, plan, job_of, what, stall_s)
        return self.collect(key)
