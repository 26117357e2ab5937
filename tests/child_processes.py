"""Processes a test starts end with the test: none outlives it, and neither do their pipes.

A ``Popen`` collected before its exit status was read warns "subprocess … is still running"
(ended or not), and an open pipe of it "unclosed file", in whatever test is running when the
collector gets to it (a failed test's frames keep it until then). Tests left them so when they
failed or timed out between starting a process and waiting for it, and when they killed and
waited for one but never read its output to the end (``communicate`` closes the pipes, ``wait``
does not).
"""

from __future__ import annotations

import contextlib
import subprocess

_spawned: list[subprocess.Popen] = []


def spawn(*args, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(*args, **kwargs)`` for the running test: reaped once its code has run,
    passed or failed, before its fixtures are torn down (``conftest.py``)."""
    process = subprocess.Popen(*args, **kwargs)
    _spawned.append(process)
    return process


def reap(process: subprocess.Popen) -> None:
    """Kill ``process`` unless it has ended, wait for it and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):  # input left unwritten to a process now gone
                pipe.close()


def reap_spawned() -> None:
    """Reap every process ``spawn`` started and has not reaped yet."""
    while _spawned:
        reap(_spawned.pop())
