"""Running one step in a forked child process, so that what kills it does not kill ``rda run``.

The child is a ``fork`` of the driver: it starts at once, with every module already imported
and the batch's raw records (when the parent read them) already in memory. Its result, or the
exception it raised, comes back pickled through a pipe; an exception keeps its chain of causes
(Beam wraps a DoFn's ``OSError`` in a ``RuntimeError``), so retries can classify it. A child that
dies without answering — a signal (SIGSEGV, SIGKILL from the OOM killer) or an exit — raises
``WorkerCrashed`` in the parent. The child dies with its parent (``PR_SET_PDEATHSIG``), so a
``kill -9`` of ``rda run`` never leaves a worker behind.

Fork only where no other thread of the parent is in the middle of something the child needs:
the driver forks between steps, from its main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import os
import pickle
import signal
import traceback
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
_CHAIN_LIMIT = 8


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


def run_isolated(work: Callable[[], T], what: str) -> T:
    """``work()`` in a forked child; its result, its exception re-raised, or ``WorkerCrashed``."""
    parent = os.getpid()
    read_end, write_end = os.pipe()
    pid = fork_frozen()
    if pid == 0:  # pragma: no cover - the child: measured by its effects
        os.close(read_end)
        _child(work, write_end, parent)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:  # a second stop signal: the child goes with the step it was doing
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


def fork_frozen() -> int:
    """``os.fork()`` (0 in the child) where the child never collects the parent's objects: a
    finalizer of one bound to the parent's threads (a client, a connection pool) would run in the
    child, where those threads are gone, and crash it (seen: SIGSEGV while "Garbage-collecting").
    CPython's advice for fork; the parent collects its own garbage as before."""
    parent = os.getpid()
    gc.freeze()
    try:
        return os.fork()
    finally:
        if os.getpid() == parent:
            gc.unfreeze()


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
    """Linux: the kernel SIGKILLs this child when its parent dies."""
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
