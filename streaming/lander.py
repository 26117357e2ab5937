"""A landing process that outlives one batch: forked once, it lands batch after batch.

``run_isolated`` forks a child per step. For landing, that costs each batch a fork of the whole
driver (~25–50 ms at its size) and a child that starts cold (Beam's caches, first-use imports):
measured on 1,000-record batches, landing took 0.30 s in a child per batch and 0.15 s in a kept
one. A ``Lander`` forks one child the first time and sends it each batch's work (pickled
arguments over a pipe); the child keeps its state from one batch to the next.

It isolates exactly as ``run_isolated`` does: a crash kills only the child, and the batch gets
``WorkerCrashed`` (counted, then bisected: ``streaming/poison.py``); the next batch gets a new
child, forked by the lander's spawner (``streaming/spawner.py``) as a copy of the process as
it was at the first fork. The child dies with the spawner, the spawner with this process
(``PR_SET_PDEATHSIG``); a child also ends when its pipe closes, and is replaced once it has
grown past ``max_rss_mb`` (Arrow keeps freed memory for reuse). Because the children keep the
process's state as it was at the first fork, a lander lives as long as one run.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import pickle
import signal
import struct
from collections.abc import Callable, Hashable
from typing import IO, Any, Generic, NoReturn, TypeVar

from infra.processes import resident_bytes
from streaming.isolation import (
    PARENT_ENDS,
    STALL_S,
    WorkerCrashed,
    await_answer,
    child_answer,
    die_with_parent,
    rebuilt,
    stuck,
)
from streaming.spawner import Spawner, SpawnerGone

log = logging.getLogger("rda.run")
A = TypeVar("A")
T = TypeVar("T")
_LENGTH = struct.Struct("!Q")
# A child's CPU priority below the run's (niceness added to the one it was forked with). Under a
# backlog three processes want the 2 cores: the run sequencing one batch (its critical path), the
# lead child landing the next ahead of it, and the other child lending itself to the event-time
# step. At equal priority the run waited on the run queue for 0.67-1.15 s of an 8-batch drain
# (206,120 records, /proc/self/schedstat), at +5 for 0.26-0.42 s, at +10 for 0.20-0.24 s. A batch
# the run waits for lands as fast at +5 (the run sleeps then); +5 and not more, so the children
# keep ~96 % of a core against the quality worker's nice 19 (CFS weights 335 against 15) when GE
# warms up beside the first batch's landing.
NICER_THAN_THE_RUN = 5


class Lander(Generic[A, T]):
    """Runs ``work(args)`` in a long-lived forked child; the result, or its exception.

    ``run`` waits for the answer. ``submit`` returns at once and ``collect`` waits for it later
    (the parent sequences one batch while the child lands the next): one step is in flight at a
    time, and a ``submit`` or ``run`` while one is takes its answer first and keeps it for
    ``collect``.
    """

    def __init__(self, work: Callable[[A], T], max_rss_mb: float = 1024.0) -> None:
        self.work = work  # the child has it by fork: only the arguments travel
        self.max_rss_mb = max_rss_mb
        self.pid: int | None = None
        self._spawner = Spawner(self._serve_pipes)  # forks the children (streaming/spawner.py)
        self._requests: IO[bytes] | None = None
        self._answers: IO[bytes] | None = None
        # (key, what, stall_s) of the step sent and not answered yet
        self._in_flight: tuple[Hashable, str, float] | None = None
        self._answered: dict[Hashable, tuple[bool, Any]] = {}  # key: (failed, result or error)
        atexit.register(self.close)

    def run(self, args: A, what: str, stall_s: float = STALL_S) -> T:
        """``work(args)`` in the child (forked now if there is none); ``what`` names the step in
        a ``WorkerCrashed``; ``stall_s``: how long the child may go without CPU time before it
        is taken for stuck (``streaming/isolation.py``)."""
        key = object()
        self.submit(key, args, what, stall_s)
        return self.collect(key)

    def submit(self, key: Hashable, args: A, what: str, stall_s: float = STALL_S) -> None:
        """Send ``work(args)`` to the child and return; ``collect(key)`` has its outcome."""
        request = pickle.dumps(args)  # before anything is sent: unpicklable is the caller's error
        self._settle()
        self.start()
        assert self._requests is not None
        try:
            _send(self._requests, request)
        except BrokenPipeError:  # it died since its last answer
            self._crashed(key, what)
            return
        except BaseException:  # a second stop signal mid-request: the child goes with it
            self._kill()
            raise
        self._in_flight = (key, what, stall_s)

    @property
    def busy(self) -> bool:
        """A step is in flight (submitted, not answered yet)."""
        return self._in_flight is not None

    def submitted(self, key: Hashable) -> bool:
        """A step was submitted under ``key`` and not collected yet."""
        return key in self._answered or (self._in_flight is not None and self._in_flight[0] == key)

    def collect(self, key: Hashable) -> T:
        """The outcome of the step submitted under ``key``: waits for it, raises its error."""
        if self._in_flight is not None and self._in_flight[0] == key:
            self._settle()
        failed, outcome = self._answered.pop(key)
        if failed:
            raise outcome
        return outcome

    def start(self) -> None:
        """Fork the child now (a step forks it if there is none)."""
        if self.pid is None:
            self._start()

    def close(self) -> None:
        """Let the child finish (end of its input) and collect it; a step in flight, whose
        answer nobody waits for now, is killed with it (it is journaled: the next start redoes
        it)."""
        self._answered.clear()
        if self._in_flight is not None:
            self._in_flight = None
            self._kill()
        self._reap()
        self._close_spawner()

    def _settle(self) -> None:
        """Wait for the step in flight, if any, and keep its outcome for ``collect``."""
        if self._in_flight is None:
            return
        (key, what, stall_s), self._in_flight = self._in_flight, None
        assert self._answers is not None and self.pid is not None
        try:
            if not await_answer(self._answers.fileno(), self.pid, stall_s):
                self._answered[key] = (True, stuck(self.pid, what, stall_s))
                self._reap()
                return
            answer = _receive(self._answers)
        except EOFError:  # it died
            self._crashed(key, what)
            return
        except BaseException:  # a second stop signal: the child goes with the step it was doing
            self._kill()
            raise
        kind, value = pickle.loads(answer)
        if self.pid is not None and resident_bytes(self.pid) > self.max_rss_mb * 2**20:
            self._reap()
        self._answered[key] = (True, rebuilt(value)) if kind == "error" else (False, value)

    def _crashed(self, key: Hashable, what: str) -> None:
        """The child died: the step's outcome is ``WorkerCrashed``, how it died from its exit
        status."""
        self._answered[key] = (True, WorkerCrashed.from_status(what, self._reap()))

    def _start(self) -> None:
        """A new child, from the spawner (forked now if it is not running: the first time,
        or if it was killed — then from this process as it is now, logged)."""
        if self._spawner.pid is None:
            self._start_spawner()
        try:
            pid, request_write, answer_read = self._spawner.spawn()
        except SpawnerGone as error:
            log.warning("the landing children's spawner is gone (%s): forking another", error)
            self._close_spawner()
            self._start_spawner()
            pid, request_write, answer_read = self._spawner.spawn()
        PARENT_ENDS.update((request_write, answer_read))
        self.pid = pid
        self._requests = os.fdopen(request_write, "wb")
        self._answers = os.fdopen(answer_read, "rb")

    def _start_spawner(self) -> None:
        # Another lander's ends, inherited, would keep its child (or spawner) from seeing the
        # end of its input.
        self._spawner.start(close_in_child=set(PARENT_ENDS))
        PARENT_ENDS.add(self._spawner.fileno())

    def _close_spawner(self) -> None:
        PARENT_ENDS.discard(self._spawner.fileno())
        self._spawner.close()

    def _serve_pipes(self, request_read: int, answer_write: int, spawner: int) -> NoReturn:
        """In a child of the spawner: ``_serve`` on its two pipes."""
        self._serve(os.fdopen(request_read, "rb"), os.fdopen(answer_write, "wb"), spawner)

    def _serve(self, requests: IO[bytes], answers: IO[bytes], parent: int) -> NoReturn:
        """The child's loop (never returns): each request's answer, until the pipe closes."""
        die_with_parent(parent)
        os.nice(NICER_THAN_THE_RUN)  # the spawner keeps the run's: a replacement is as nice
        code = 0
        try:
            while True:
                try:
                    args = pickle.loads(_receive(requests))
                except EOFError:
                    break
                data, failed = child_answer(functools.partial(self.work, args))
                _send(answers, data)
                code = 1 if failed else code
        finally:
            os._exit(code)  # no atexit handlers, no joining of the parent's inherited state

    def _kill(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> int:
        """Close the pipes (the child, if alive, sees the end of its input), collect the child;
        its wait status."""
        pid, self.pid = self.pid, None
        for pipe in (self._requests, self._answers):
            if pipe is not None:
                PARENT_ENDS.discard(pipe.fileno())
                with contextlib.suppress(OSError):
                    pipe.close()
        self._requests = self._answers = None
        if pid is None:
            return 0
        try:
            return self._spawner.wait_status(pid)
        except SpawnerGone:  # the child died with it
            return 0


def _send(pipe: IO[bytes], data: bytes) -> None:
    pipe.write(_LENGTH.pack(len(data)))
    pipe.write(data)
    pipe.flush()


def _receive(pipe: IO[bytes]) -> bytes:
    header = pipe.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the other end closed the pipe")
    (size,) = _LENGTH.unpack(header)
    data = pipe.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe mid-message")
    return data
