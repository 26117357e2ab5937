"""Retrying a step while the broker or the chain is unavailable: exponential, jittered, bounded."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("rda.run")


class GaveUp(RuntimeError):
    """Still failing after the configured number of attempts."""


def is_transient(error: BaseException) -> bool:
    """An outage worth waiting for: the broker or the chain did not answer."""
    from kafka.errors import KafkaError

    from pipelines.kafka_source import KafkaUnavailable

    # requests' and urllib3's connection errors (web3 over HTTP) are OSErrors.
    return isinstance(error, (KafkaUnavailable, KafkaError, OSError, TimeoutError))


@dataclass
class Backoff:
    """Delays of ``base * 2**attempt`` seconds, capped, with full jitter (AWS style)."""

    base: float = 0.5
    cap: float = 30.0
    attempts: int = 30  # 0: unlimited
    rng: random.Random | None = None

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
                if not is_transient(error):
                    raise
                attempt += 1
                if self.attempts and attempt >= self.attempts:
                    raise GaveUp(f"{what} failed {attempt} times, last: {_short(error)}") from error
                delay = self.delay(attempt - 1)
                log.warning(
                    "%s failed (attempt %d): %s; retrying in %.1f s",
                    what,
                    attempt,
                    _short(error),
                    delay,
                    extra={"event": "retry", "attempt": attempt, "delay_s": round(delay, 2)},
                )
                if stop.wait(delay):
                    return None


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
