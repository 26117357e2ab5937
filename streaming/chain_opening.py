"""Opening the run's chain beside its first landing.

Connecting to the chain and checking it against the data directory (``bind``) take ~1.5 s on
the embedded EVM (web3's and py-evm's imports, the registry's deployment) and a round trip or
more on a remote node. A batch's plan and landing need neither: only its sequencing reads and
anchors on the chain. So ``rda run`` opens the chain in a thread while the first batch lands in
the landing child, and the sequencer waits for it at its first chain read
(``ChainOpening.ready``). A failure to open is raised there, as it would have been at start.

The exception is a run that checks device signatures against a node registry: the registry's
block is journaled with each plan, so the chain is opened before the first plan.

A fork while the thread is importing could leave the child a module half imported, its lock
held: every ``os.fork`` of this process waits for an opening in progress (the landing child is
forked before the thread starts, so only a replacement child can wait).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_in_progress: set[threading.Thread] = set()


def _wait_before_fork() -> None:
    for thread in list(_in_progress):
        if thread is not threading.current_thread():
            thread.join()


os.register_at_fork(before=_wait_before_fork)


class ChainOpening(Generic[T]):
    """``open()`` run once, in a thread (``start(background=True)``) or at once; its result is
    ``ready()``'s, its exception raised by ``ready()``."""

    def __init__(self, open_chain: Callable[[], T]) -> None:
        self._open = open_chain
        self._thread: threading.Thread | None = None
        self._result: T | None = None
        self._error: BaseException | None = None
        self._done = False

    def start(self, background: bool) -> None:
        if not background:
            self._run()
            return
        self._thread = threading.Thread(target=self._run, name="rda-chain-opening", daemon=True)
        _in_progress.add(self._thread)
        self._thread.start()

    def ready(self) -> T | None:
        """The opened chain (None: the run was stopped while it was being opened)."""
        if self._thread is not None:
            self._thread.join()
        if not self._done:
            raise RuntimeError("the chain's opening was never started")
        if self._error is not None:
            raise self._error
        return self._result

    def _run(self) -> None:
        try:
            self._result = self._open()
        except BaseException as error:  # raised in the thread that asks for the chain
            self._error = error
        finally:
            self._done = True
            _in_progress.discard(threading.current_thread())
