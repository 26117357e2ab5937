"""One thread that acts on whatever overruns its deadline: interrupt a DuckDB cursor, shut a
socket that is too slow to send its request. A timer thread per item would cost more than
the small queries and requests it guards."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any


class Deadlines:
    def __init__(self, action: Callable[[Any], None], name: str) -> None:
        self._action = action
        self._name = name
        self._due: dict[int, tuple[float, Any]] = {}
        self._tokens = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, item: Any, seconds: float) -> int:
        """Act on ``item`` in ``seconds`` unless released before; returns a token."""
        token = next(self._tokens)
        with self._wake:
            self._due[token] = (time.monotonic() + seconds, item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return token

    def release(self, token: int | None) -> None:
        if token is None:
            return
        with self._wake:
            self._due.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                while True:
                    now = time.monotonic()
                    overdue = [t for t, (deadline, _i) in self._due.items() if deadline <= now]
                    if overdue:
                        break
                    nearest = min((deadline for deadline, _i in self._due.values()), default=None)
                    self._wake.wait(None if nearest is None else nearest - now)
                items = [self._due.pop(token)[1] for token in overdue]
            for item in items:
                # The item may have finished, and been closed, in the meantime.
                with contextlib.suppress(Exception):
                    self._action(item)
