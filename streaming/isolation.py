"""Running one step in a forked child process, so that what kills it does not kill ``rda run``.

The child is a ``fork`` of the driver: it starts at once, with every module already imported
and the batch's raw records (when the parent read them) already in memory. Its result, or the
exception it raised, comes back pickled through a pipe; an exception keeps its chain of causes
(Beam wraps a DoFn's ``OSError`` in a ``RuntimeError``), so retries can classify it. A child that
dies without answering — a signal (SIGSEGV, SIGKILL from the OOM killer) or an exit — raises
``WorkerCrashed`` in the parent. The child dies with its parent (``PR_SET_PDEATHSIG``), so a
``kill -9`` of ``rda run`` never leaves a worker behind.

Fork only where no other thread of the parent is in the middle of something the child needs:
the driver forks between steps, from its main thread. Even so, a lock some other thread held at
the fork (a library's own threads: librdkafka's, Arrow's) can leave a child stuck for good: the
parent waits for an answer only while the child's main thread uses CPU or for ``stall_s`` after
it stopped (``await_answer``), then has it dump its threads' stacks (``faulthandler``, to the
inherited stderr) and kills it — ``WorkerCrashed``, counted and retried like any crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import gc
import itertools
import os
import pickle
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
_CHAIN_LIMIT = 8
# A child whose main thread has used no CPU for this long without answering is stuck (seen twice
# in a few thousand forks of the test suite: a landing child that never answered). Waiting on
# Kafka costs no CPU either: callers whose child may wait on a broker pass more than its timeout.
STALL_S = 120.0
_DUMP_S = 1.0  # for the stuck child's stack dump, before it is killed
IMPORT_WAIT_S = 2.0  # at most, for another thread's import to end before a fork
# This process's ends of the pipes to its long-lived children (the landers', the quality
# worker's stdin): a child forked later must not hold copies, or the child at the other end
# would not see the end of its input when this process closes them, or dies.
PARENT_ENDS: set[int] = set()


def _libc_prctl() -> Callable[..., int] | None:
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


# Looked up once, in the parent: a child that called dlopen() could wait forever for the
# dynamic loader's lock if a thread of the parent held it at the fork.
_PRCTL = _libc_prctl()


class WorkerCrashed(RuntimeError):
    """A worker process died without an answer (killed by a signal, or exited)."""

    def __init__(self, what: str, how: str) -> None:
        self.how = how  # e.g. "killed by SIGSEGV"
        super().__init__(f"the worker process died while {what} ({how})")

    @classmethod
    def from_status(cls, what: str, status: int) -> WorkerCrashed:
        if os.WIFSIGNALED(status):
            return cls(what, f"killed by {signal.Signals(os.WTERMSIG(status)).name}")
        return cls(what, f"exit status {os.WEXITSTATUS(status)}")


class ChildError(RuntimeError):
    """An exception of the child that could not be pickled, by type name and message."""


def run_isolated(work: Callable[[], T], what: str, stall_s: float = STALL_S) -> T:
    """``work()`` in a forked child; its result, its exception re-raised, or ``WorkerCrashed``
    (also when the child is stuck: see ``await_answer``)."""
    parent = os.getpid()
    read_end, write_end = os.pipe()
    pid = fork_frozen()
    if pid == 0:  # pragma: no cover - the child: measured by its effects
        os.close(read_end)
        _child(work, write_end, parent)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            if not await_answer(read_end, pid, stall_s):
                raise stuck(pid, what, stall_s)
            answer = pipe.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:  # a second stop signal, or stuck: the child goes with its step
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    if not answer:
        raise WorkerCrashed.from_status(what, status)
    kind, value = pickle.loads(answer)
    if kind == "error":
        raise rebuilt(value)
    return value


def await_answer(fd: int, pid: int, stall_s: float = STALL_S) -> bool:
    """Wait until ``fd``, the child ``pid``'s answer pipe, can be read (an answer, or its end):
    True. False once the child's main thread has used no CPU for ``stall_s`` meanwhile: it is
    stuck. Without ``/proc`` (not Linux) it waits as long as it takes."""
    ticks, still_since = main_thread_ticks(pid), time.monotonic()
    while True:
        readable, _, _ = select.select([fd], [], [], min(1.0, stall_s / 4))
        if readable:
            return True
        now, current = time.monotonic(), main_thread_ticks(pid)
        if current is None:  # gone, or no /proc: the read sees the rest
            return True
        if current != ticks:
            ticks, still_since = current, now
        elif now - still_since >= stall_s:
            return False


def main_thread_ticks(pid: int) -> int | None:
    """CPU time (user + system, clock ticks) of process ``pid``'s main thread; None if gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)


def stuck(pid: int, what: str, stall_s: float) -> WorkerCrashed:
    """Have the stuck child ``pid`` dump its threads' stacks, kill it; the crash to raise."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)  # faulthandler, registered in every child
        time.sleep(_DUMP_S)
        os.kill(pid, signal.SIGKILL)
    return WorkerCrashed(what, f"stuck: its main thread used no CPU for {stall_s:.0f} s")


def fork_frozen() -> int:
    """``os.fork()`` (0 in the child) where the child never collects the parent's objects: a
    finalizer of one bound to the parent's threads (a client, a connection pool) would run in the
    child, where those threads are gone, and crash it (seen: SIGSEGV while "Garbage-collecting").
    CPython's advice for fork; the parent collects its own garbage as before. Not while another
    thread is importing a module (``imports_settled``)."""
    imports_settled()
    parent = os.getpid()
    gc.freeze()
    try:
        return os.fork()
    finally:
        if os.getpid() == parent:
            gc.unfreeze()


def imports_settled(limit_s: float = IMPORT_WAIT_S) -> bool:
    """Wait, at most ``limit_s``, until no module of this process is being imported; whether
    none is. A module's import holds its lock until its body has run: a child forked meanwhile
    has the lock, not the thread that would release it, and its first use of the module waits
    for good (seen: a landing child forked beside the lag watcher's first ``import
    confluent_kafka``). A module the forking thread itself is importing would never settle:
    hence the limit."""
    deadline = time.monotonic() + limit_s
    while _being_imported():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


def _being_imported() -> bool:
    """Some module's body is running (importlib marks its spec ``_initializing`` meanwhile)."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for module in list(sys.modules.values())
    )


def _child(work: Callable[[], object], write_end: int, parent: int) -> None:  # pragma: no cover
    die_with_parent(parent)
    data, failed = child_answer(work)
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(data)
    os._exit(1 if failed else 0)  # no atexit handlers, no joining of the parent's inherited state


def child_answer(work: Callable[[], object]) -> tuple[bytes, bool]:  # pragma: no cover
    """In a child: ``work()``'s result or exception, pickled for the parent; whether it failed."""
    try:
        payload: tuple = ("ok", work())
    except BaseException as error:  # every failure goes back to the parent
        if hasattr(error, "add_note"):  # the child's traceback, for whoever debugs it
            error.add_note("in the worker process:\n" + traceback.format_exc().rstrip())
        payload = ("error", _portable_chain(error))
    try:
        return pickle.dumps(payload), payload[0] == "error"
    except Exception as error:  # an unpicklable result
        return pickle.dumps(("error", _portable_chain(error))), True


def die_with_parent(parent: int) -> None:
    """Linux: the kernel SIGKILLs this child when its parent dies. Also, as every child calls it
    first: SIGUSR1 dumps the child's stacks to stderr (``stuck``)."""
    with contextlib.suppress(ValueError, OSError, RuntimeError):  # stderr closed or not a file
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _portable_chain(error: BaseException) -> list[BaseException]:
    """The exception and its causes, each as itself if it pickles, else as a ``ChildError``."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < _CHAIN_LIMIT:
        try:
            pickle.loads(pickle.dumps(current))
            chain.append(current)
        except Exception:
            chain.append(ChildError(f"{type(current).__qualname__}: {current}"))
        current = current.__cause__ or current.__context__
    return chain


def rebuilt(chain: list[BaseException]) -> BaseException:
    """The exception a child sent back, with its causes chained again."""
    for error, cause in itertools.pairwise(chain):
        error.__cause__ = cause
    return chain[0]
