"""Waiting for a child's end returns as it ends (``infra/process_ends.py``), with the timeout
and exit status of ``Popen.wait``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from child_processes import spawn

from infra.process_ends import await_an_end, open_pidfd, wait_for_end


def sleeper(seconds: float, code: int = 0) -> subprocess.Popen:
    script = f"import sys, time; time.sleep({seconds}); sys.exit({code})"
    return spawn([sys.executable, "-c", script], stdin=subprocess.DEVNULL)


def test_the_wait_returns_the_exit_status_as_the_process_ends():
    process = sleeper(0.3, code=3)
    started = time.monotonic()
    assert wait_for_end(process, timeout_s=60) == 3
    assert time.monotonic() - started < 30  # not the whole timeout
    assert process.returncode == 3


def test_a_process_still_running_at_the_timeout_is_left_running():
    process = sleeper(60)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_for_end(process, timeout_s=0.2)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()


def test_a_process_already_collected_is_not_waited_for():
    process = sleeper(0)
    process.wait()
    assert wait_for_end(process, timeout_s=0.01) == 0


def test_one_child_ending_among_several_ends_the_wait():
    long, short = sleeper(60), sleeper(0.2)
    pidfds = [open_pidfd(long.pid), open_pidfd(short.pid)]
    try:
        started = time.monotonic()
        await_an_end(pidfds, timeout_s=30)
        assert time.monotonic() - started < 20
        assert short.wait(timeout=5) == 0 and long.poll() is None
    finally:
        long.kill()
        long.wait()
        for fd in pidfds:
            if fd is not None:
                os.close(fd)


def test_without_pidfds_the_wait_is_the_timeout():
    started = time.monotonic()
    await_an_end([None], timeout_s=0.05)
    assert time.monotonic() - started >= 0.05
