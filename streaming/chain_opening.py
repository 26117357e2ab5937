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
from dataclasses import dataclass
from typing import Generic, TypeVar

from infra.state import InfraState
from streaming.chain import ChainContext, open_chain
from streaming.chain_binding import bind
from streaming.config import RunSettings
from streaming.errors import SettingsError
from streaming.retry import Backoff
from streaming.store import Workspace

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


@dataclass(frozen=True)
class ChainTarget:
    """The chain a run anchors on: its kind, node, registry and node registry (if any)."""

    kind: str
    rpc_url: str | None
    registry: str | None
    nodes: str | None  # the NodeRegistry device signatures are checked against


def chain_target(settings: RunSettings, state: InfraState) -> ChainTarget:
    """The run's chain from its settings, else from what ``rda infra up`` started."""
    kind = settings.chain or state.chain_kind
    rpc_url, registry = settings.rpc_url, settings.registry
    if kind != "embedded":
        rpc_url = rpc_url or state.rpc_url
        registry = registry or state.registry_address
        if not rpc_url:
            raise SettingsError(f"chain {kind} needs --rpc-url (or `rda infra up --chain anvil`)")
    nodes = settings.node_registry
    if kind != "embedded" and nodes is None and rpc_url == state.rpc_url:
        nodes = state.node_registry_address
    return ChainTarget(kind, rpc_url, registry, nodes)


def open_and_bind(
    target: ChainTarget, space: Workspace, backoff: Backoff, stop: threading.Event
) -> ChainContext | None:
    """Connect (retried while the node is away), then check the chain against the data
    directory (``bind``); None if ``stop`` was set meanwhile."""

    def connect() -> ChainContext:
        return open_chain(target.kind, target.rpc_url, target.registry, target.nodes)

    chain = backoff.call(f"connecting to the {target.kind} chain", connect, stop)
    if chain is not None:  # the chain this data directory is anchored on, or stop
        backoff.call(
            "checking the chain against the data directory", lambda: bind(chain, space), stop
        )
    return chain
