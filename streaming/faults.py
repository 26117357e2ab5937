"""Test hook: ``RDA_CRASH_AT=STEP[:N]`` makes the process SIGKILL itself right after the Nth
time (default the first) that journal step is written.

Steps, in order: ``planned``, ``landed``, ``committed``, ``anchored``, ``offsets_committed``
(Kafka offsets committed, journal not yet closed) and ``done``. The crash tests use it to kill a
real ``rda run`` exactly between two steps, deterministically; nothing else should set it.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

STEPS = ("planned", "landed", "committed", "anchored", "offsets_committed", "done")
_seen: Counter[str] = Counter()


def journaled(step: str) -> None:
    """Called by the driver right after ``step`` is journaled."""
    requested = os.environ.get("RDA_CRASH_AT")
    if not requested:
        return
    name, _, nth = requested.partition(":")
    _seen[step] += 1
    if name == step and _seen[step] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
