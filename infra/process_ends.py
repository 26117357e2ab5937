"""Waiting for a child process's end, woken by the end itself rather than by looking again.

``subprocess.Popen.wait(timeout)`` looks for the end between sleeps of up to 50 ms, and the
quality worker looked for its GE jobs' ends every 20 ms. At ``rda run``'s end the run waits for
its worker, which waits for its last job: each look's delay fell on the run's wall time (~35 ms
on average of ~4.7 s). A Linux pidfd (``os.pidfd_open``, Linux 5.3) becomes readable when its
process ends, so a ``select`` on it returns then. Where there is none (another system, an old
kernel, a process already reaped), the waits look again as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from collections.abc import Iterable


def open_pidfd(pid: int) -> int | None:
    """A pidfd for the child ``pid`` (close it with ``os.close``), or None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, before 5.3, or the process is already gone
        return None


def wait_for_end(process: subprocess.Popen, timeout_s: float | None) -> int:
    """``process.wait(timeout_s)`` (its exit status; ``subprocess.TimeoutExpired`` after
    ``timeout_s``), returning as the process ends."""
    if timeout_s is None or process.returncode is not None:
        return process.wait(timeout_s)
    pidfd = open_pidfd(process.pid)
    if pidfd is None:
        return process.wait(timeout_s)
    try:
        ended, _, _ = select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)
    if not ended:
        raise subprocess.TimeoutExpired(process.args, timeout_s)
    return process.wait()


def await_an_end(pidfds: Iterable[int | None], timeout_s: float) -> None:
    """Return once one of the processes behind ``pidfds`` has ended, or after ``timeout_s``
    (at once if one already has; a None among them, a process without a pidfd, is looked for
    by the caller after the timeout)."""
    open_fds = [fd for fd in pidfds if fd is not None]
    if not open_fds:
        time.sleep(timeout_s)
        return
    with contextlib.suppress(InterruptedError):  # a signal: the caller looks again anyway
        select.select(open_fds, [], [], timeout_s)
