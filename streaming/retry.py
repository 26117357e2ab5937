"""Retrying a step while the broker or the chain is unavailable: exponential, jittered, bounded.

Errors are classified by their *cause*, not by the type that reached the loop: Beam wraps an
exception raised in a DoFn (a full disk while writing Parquet) in a ``RuntimeError``, and the
landing child sends its exception back with its chain of causes (``streaming/isolation.py``).
"""

from __future__ import annotations

import errno
import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from streaming.errors import JournalDamaged

T = TypeVar("T")
log = logging.getLogger("rda.run")
FAILURE_KINDS = ("broker", "chain", "disk", "network", "worker_crash", "other")
_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}
# web3's own names for a node that does not answer (a receipt never mined, a dropped link)
_CHAIN_OUTAGES = {"TimeExhausted", "ProviderConnectionError", "RequestTimedOut"}


class GaveUp(RuntimeError):
    """Still failing after the configured number of attempts."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the exceptions it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def failure_kind(error: BaseException) -> str:
    """What failed, from the innermost cause that says: broker, chain, disk, network, worker_crash
    or other."""
    from kafka.errors import KafkaError

    from pipelines.kafka_source import KafkaUnavailable, RecordsLost
    from sinks.state_store import StateDamaged

    kind = "other"
    for cause in causes(error):
        name, module = type(cause).__name__, type(cause).__module__
        if isinstance(cause, (KafkaUnavailable, KafkaError, RecordsLost)):
            return "broker"
        if name == "WorkerCrashed":
            return "worker_crash"
        if module.startswith(("requests", "urllib3", "web3")) or name in _CHAIN_OUTAGES:
            return "chain"  # web3 is the only HTTP client the runtime has
        if (isinstance(cause, OSError) and cause.errno in _DISK) or _is_storage_error(cause):
            return "disk"
        if isinstance(cause, (JournalDamaged, StateDamaged)):  # the data directory's: kept
            return "disk"
        if isinstance(cause, (OSError, TimeoutError)):
            kind = "network"
    return kind


def is_transient(error: BaseException) -> bool:
    """An outage worth waiting for, anywhere in the chain of causes: the broker or the chain did
    not answer, or the disk was full (someone may free space)."""
    from kafka.errors import KafkaError

    from pipelines.kafka_source import KafkaUnavailable, RecordsLost

    if any(isinstance(cause, RecordsLost) for cause in causes(error)):
        return False  # the broker's own error that told of them is a KafkaError
    for cause in causes(error):
        # requests' and urllib3's connection errors (web3 over HTTP) are OSErrors.
        if isinstance(cause, (KafkaUnavailable, KafkaError, OSError, TimeoutError)):
            return True
        if type(cause).__name__ in _CHAIN_OUTAGES or _is_storage_error(cause):
            return True
    return False


def _is_storage_error(error: BaseException) -> bool:
    """DuckDB's I/O errors (a full or read-only disk under the journal) are not OSErrors."""
    return type(error).__name__ == "IOException" and "duckdb" in type(error).__module__


@dataclass
class Backoff:
    """Delays of ``base * 2**attempt`` seconds, capped, with full jitter (AWS style)."""

    base: float = 0.5
    cap: float = 30.0
    attempts: int = 30  # 0: unlimited
    rng: random.Random | None = None
    on_failure: Callable[[str, bool], None] = lambda kind, retried: None  # metrics

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2**attempt)
        return (self.rng or random).uniform(ceiling / 2, ceiling)

    def call(self, what: str, step: Callable[[], T], stop: threading.Event) -> T | None:
        """``step()``, retried on transient errors; None if ``stop`` is set while waiting."""
        attempt = 0
        while True:
            try:
                return step()
            except Exception as error:
                kind = failure_kind(error)
                if not is_transient(error):
                    self.on_failure(kind, False)
                    raise
                attempt += 1
                if self.attempts and attempt >= self.attempts:
                    self.on_failure(kind, False)
                    message = f"{what} failed {attempt} times, last: {short(error)}"
                    raise GaveUp(message, kind) from error
                self.on_failure(kind, True)
                delay = self.delay(attempt - 1)
                log.warning(
                    "%s failed (attempt %d): %s; retrying in %.1f s",
                    what,
                    attempt,
                    short(error),
                    delay,
                    extra={
                        "event": "retry",
                        "attempt": attempt,
                        "delay_s": round(delay, 2),
                        "kind": kind,
                    },
                )
                if stop.wait(delay):
                    return None


def short(error: BaseException) -> str:
    """The error in one line, named by what a wrapper hides (Beam's plain ``RuntimeError``)."""
    root = next((c for c in causes(error) if type(c) is not RuntimeError), error)
    text = str(root).strip().splitlines()
    return f"{type(root).__name__}: {text[0] if text else ''}"[:300]
