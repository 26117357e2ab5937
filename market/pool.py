"""Buyer queries run in a pool of worker processes, shared fairly between buyers.

Why processes: DuckDB's memory limit bounds its buffers but not a single value (a string
doubled thirty times is one value), and some functions cannot be interrupted. A worker process
has its own memory cap (``RLIMIT_DATA``, see ``market.worker``), can be killed when it overruns
its time, and never takes the server down with it. It also encodes the result, so encoding is
inside the time limit and off the server's CPU.

Fairness: each API key runs at most ``per_buyer`` queries at once; the others wait in its own
queue (at most ``queued_per_buyer``, beyond that ``429 too_many_queries``). A free worker goes
to the next key in round-robin order, so a buyer with a burst of heavy queries waits behind
itself, not in front of others. A query that runs longer than ``demote_after_s`` (100 ms) gets the
lowest CPU priority (nice 19) for the rest of its run: long queries share the cores among
themselves while short ones keep answering in milliseconds. A query stopped by a wall (out of
memory, out of time, result too large) costs its buyer a wait before their next query runs,
``penalty_s`` doubling with each further hit up to ``max_penalty_s``: a buyer who keeps
throwing bombs throws them slowly, and the workers they wreck are replaced less often.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from infra.processes import resident_bytes
from market.execution import QueryJob, QueryOutput
from market.policy import QueryRefused
from market.sandbox import Limits, out_of_memory_refusal, timeout_refusal

_WALLS = {"out_of_memory", "timeout", "result_too_large"}  # refusals that cost a buyer a wait


@dataclass(frozen=True)
class PoolLimits:
    workers: int = 4
    per_buyer: int = 2  # queries of one API key running at once
    queued_per_buyer: int = 32  # waiting behind them; more is 429
    worker_memory_mb: int = 1536  # each worker's data segment (RLIMIT_DATA)
    queue_timeout_s: float = 30.0  # a query waits at most this long for a worker (then 503)
    demote_after_s: float = 0.1  # then the worker runs at nice 19
    kill_grace_s: float = 1.0  # past its time limit by this much, a worker is killed
    penalty_s: float = 0.25  # a buyer's wait after a query hit a wall, doubling per hit…
    max_penalty_s: float = 5.0  # …up to this; a query that completes clears it

    @property
    def memory_cap_bytes(self) -> int:
        """What all workers together may hold (the server process itself comes on top)."""
        return self.workers * self.worker_memory_mb * 1024 * 1024


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    last_buyer: str | None = None  # its sandbox databases are built for this buyer's licences

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def rss_bytes(self) -> int:
        return resident_bytes(self.pid)

    def renice(self, value: int) -> bool:
        """Every thread of the worker to ``value`` (Linux applies nice per thread)."""
        try:
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                os.setpriority(os.PRIO_PROCESS, int(tid), value)
        except (PermissionError, OSError):
            return False
        return True


@dataclass(eq=False)
class _Ticket:
    buyer: str
    worker: _Worker | None = None
    queued_at: float = field(default_factory=time.monotonic)


class QueryPool:
    """Worker processes, a fair queue in front of them, and a supervisor per running query."""

    def __init__(self, limits: Limits, pool: PoolLimits | None = None) -> None:
        self.limits = limits
        self.pool = pool or PoolLimits()
        self.spool_dir = Path(tempfile.mkdtemp(prefix="rda-serve-"))
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["__main__", "market.worker"])
        self._cond = threading.Condition()
        self._waiting: dict[str, deque[_Ticket]] = {}
        self._running: Counter[str] = Counter()
        # Spooled results handed over but not yet sent: they count against their buyer's
        # running queries until released (twelve slow readers of one buyer held 284 MiB of
        # spool while the pool counted none of them running).
        self._undelivered: Counter[str] = Counter()
        self._turns: deque[str] = deque()
        self._strikes: Counter[str] = Counter()
        self._cool_until: dict[str, float] = {}
        self._closed = False
        self._all: set[_Worker] = set()
        self._idle: list[_Worker] = [self._spawn() for _ in range(self.pool.workers)]

    # -- the public face -------------------------------------------------------------------

    def run(self, buyer: str, job: QueryJob) -> QueryOutput:
        """Run ``job`` for ``buyer`` when its turn comes; refusals raise ``QueryRefused``."""
        queued = time.monotonic()
        worker = self._acquire(buyer)
        started = time.monotonic()
        reply, healthy = None, False
        try:
            reply, healthy = self._supervise(worker, job)
        finally:
            self._release(buyer, worker, healthy, _spooled_result(reply))
        self._account(buyer, reply)
        if reply[0] == "ok":
            output: QueryOutput = reply[1]
            if output.path is not None:
                output.on_release = functools.partial(self._delivered, buyer)
            output.timings["queue"] = round((started - queued) * 1000, 3)
            output.timings["run"] = round((time.monotonic() - started) * 1000, 3)
            return output
        _kind, code, message, status = reply
        raise QueryRefused(code, message, status)

    def _account(self, buyer: str, reply: tuple) -> None:
        with self._cond:
            if reply[0] == "ok":
                self._strikes.pop(buyer, None)
                self._cool_until.pop(buyer, None)
            elif reply[1] in _WALLS:
                self._strikes[buyer] += 1
                wait = self.pool.penalty_s * 2 ** (self._strikes[buyer] - 1)
                self._cool_until[buyer] = time.monotonic() + min(wait, self.pool.max_penalty_s)

    def worker_pids(self) -> list[int]:
        with self._cond:
            return [w.pid for w in self._all]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            self._stop(worker)
        shutil.rmtree(self.spool_dir, ignore_errors=True)

    # -- the fair queue --------------------------------------------------------------------

    def _acquire(self, buyer: str) -> _Worker:
        pool = self.pool
        with self._cond:
            if self._closed:
                raise QueryRefused("unavailable", "the marketplace is shutting down", 503)
            queue = self._waiting.setdefault(buyer, deque())
            if len(queue) >= pool.queued_per_buyer:
                raise QueryRefused(
                    "too_many_queries",
                    f"{pool.per_buyer} of your queries are running and {len(queue)} are "
                    "waiting: wait for their results before sending more",
                    429,
                )
            ticket = _Ticket(buyer)
            queue.append(ticket)
            if buyer not in self._turns:
                self._turns.append(buyer)
            self._schedule()
            deadline = ticket.queued_at + pool.queue_timeout_s
            while ticket.worker is None:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0 or self._closed:
                    self._withdraw(ticket)
                    raise QueryRefused(
                        "busy",
                        f"no query worker was free for {pool.queue_timeout_s:g} s: "
                        "try again shortly",
                        503,
                    )
                cooling = self._cool_until.get(buyer, now) - now
                self._cond.wait(min(remaining, cooling) if cooling > 0 else remaining)
                self._schedule()  # a cool-down may be over
            return ticket.worker

    def _schedule(self) -> None:
        """Hand idle workers to waiting tickets, one buyer after another (lock held); wake the
        waiters only when a ticket got a worker (a wake-up for nothing would wake them all)."""
        assigned = False
        while self._idle:
            for _ in range(len(self._turns)):
                buyer = self._turns[0]
                self._turns.rotate(-1)  # whoever is served goes to the back
                queue = self._waiting.get(buyer)
                cooled = self._cool_until.get(buyer, 0.0) <= time.monotonic()
                busy = self._running[buyer] + self._undelivered[buyer]
                if queue and cooled and busy < self.pool.per_buyer:
                    ticket = queue.popleft()
                    ticket.worker = self._warmest(buyer)
                    self._running[buyer] += 1
                    assigned = True
                    if not queue:
                        self._turns.remove(buyer)
                        del self._waiting[buyer]
                    break
            else:
                break  # nobody eligible: the rest wait for their own queries to finish
        if assigned:
            self._cond.notify_all()

    def _warmest(self, buyer: str) -> _Worker:
        """The idle worker that served ``buyer`` last (its databases are built); else one
        nobody has claimed yet; else the one idle longest: a buyer's warm worker is not
        taken by another while it sits idle between that buyer's queries."""
        claimed = [index for index, w in enumerate(self._idle) if w.last_buyer == buyer]
        unclaimed = [index for index, w in enumerate(self._idle) if w.last_buyer is None]
        index = (claimed or unclaimed or [0])[-1]
        worker = self._idle.pop(index)
        worker.last_buyer = buyer
        return worker

    def _withdraw(self, ticket: _Ticket) -> None:
        queue = self._waiting.get(ticket.buyer)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            if not queue:
                del self._waiting[ticket.buyer]
                with contextlib.suppress(ValueError):
                    self._turns.remove(ticket.buyer)

    def _release(
        self, buyer: str, worker: _Worker, healthy: bool, handed_over: str | None = None
    ) -> None:
        """``handed_over``: the spool file of the result this worker just gave; the receiver's
        to stream and delete, even if the worker is replaced now."""
        if not healthy:
            self._retire(worker, handed_over)
            worker = self._spawn() if not self._closed else worker
        with self._cond:
            self._running[buyer] -= 1
            if self._running[buyer] <= 0:
                del self._running[buyer]
            if handed_over is not None:
                self._undelivered[buyer] += 1
            if self._closed:
                self._stop(worker, handed_over)
                return
            self._idle.append(worker)
            if healthy and buyer in self._waiting and buyer not in self._turns:
                self._turns.append(buyer)
            self._schedule()

    def _delivered(self, buyer: str) -> None:
        """A spooled result of ``buyer``'s was sent or dropped: its place is free."""
        with self._cond:
            self._undelivered[buyer] -= 1
            if self._undelivered[buyer] <= 0:
                del self._undelivered[buyer]
            if buyer in self._waiting and buyer not in self._turns:
                self._turns.append(buyer)
            self._schedule()

    # -- one query on one worker -----------------------------------------------------------

    def _supervise(self, worker: _Worker, job: QueryJob) -> tuple[tuple, bool]:
        """Send ``job``, wait for the reply; demote, kill or recycle the worker as needed.
        Returns the reply and whether the worker may serve again."""
        started = time.monotonic()
        demote_at = started + self.pool.demote_after_s
        kill_at = started + self.limits.timeout_s + self.pool.kill_grace_s
        demoted = False
        try:
            worker.conn.send(job)
            while True:
                until = kill_at if demoted else min(demote_at, kill_at)
                if worker.conn.poll(max(until - time.monotonic(), 0.0)):
                    reply = worker.conn.recv()
                    break
                if time.monotonic() >= kill_at:
                    return _refusal(timeout_refusal(self.limits)), False
                if not demoted:
                    demoted = worker.renice(19)
        except (EOFError, OSError):
            return self._crash_reply(worker), False
        healthy = not demoted or worker.renice(0)  # an unprivileged server cannot go back
        # What a bomb left in the allocators would fail the next query, maybe another
        # buyer's: a worker that ran out of memory, or holds a third of its cap, is replaced.
        if reply[0] != "ok" and reply[1] == "out_of_memory":
            healthy = False
        if worker.rss_bytes() > self.pool.worker_memory_mb * 1024 * 1024 // 3:
            healthy = False
        return reply, healthy

    def _crash_reply(self, worker: _Worker) -> tuple:
        worker.process.join(timeout=1.0)
        code = worker.process.exitcode
        if code is not None and code < 0 and -code in (signal.SIGKILL, signal.SIGSEGV):
            return _refusal(out_of_memory_refusal(self.limits))
        refusal = QueryRefused(
            "query_failed", f"the query stopped its worker process (exit {code})", 400
        )
        return _refusal(refusal)

    # -- worker processes ------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        from market.worker import worker_main

        parent, child = self._context.Pipe()
        memory = self.pool.worker_memory_mb * 1024 * 1024
        process = self._context.Process(
            target=worker_main,
            args=(child, self.limits, str(self.spool_dir), memory),
            name="rda-query-worker",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        with self._cond:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker, handed_over: str | None = None) -> None:
        with self._cond:
            self._all.discard(worker)
        self._stop(worker, handed_over)

    def _stop(self, worker: _Worker, handed_over: str | None = None) -> None:
        """Kill the worker and delete its spool files but ``handed_over``: what it left
        half-written when it was killed or crashed."""
        with contextlib.suppress(OSError):
            worker.conn.close()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5.0)
        kept = Path(handed_over).name if handed_over else None
        for leftover in self.spool_dir.glob(f"result-{worker.pid}-*"):
            if leftover.name != kept:
                leftover.unlink(missing_ok=True)


def _spooled_result(reply: tuple | None) -> str | None:
    """The spool file of a worker's "ok" reply, if its result was too large for memory."""
    if reply is None or reply[0] != "ok":
        return None
    output: QueryOutput = reply[1]
    return output.path


def _refusal(refusal: QueryRefused) -> tuple:
    return ("refused", refusal.code, refusal.message, refusal.status)
