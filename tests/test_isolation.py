"""A step in a forked child per step (``run_isolated``): its answer, or a crash — a stuck child
included, killed once its main thread has used no CPU for the stall bound."""

from __future__ import annotations

import os
import threading
import time

import pytest

from streaming.isolation import WorkerCrashed, main_thread_ticks, run_isolated


def test_the_answer_comes_from_a_child():
    assert run_isolated(os.getpid, "asking") != os.getpid()


def test_a_stuck_child_is_killed_and_named_as_stuck(capfd):
    def stuck() -> None:
        threading.Event().wait(60)

    started = time.monotonic()
    with pytest.raises(WorkerCrashed, match=r"landing batch 3 \(stuck: .* no CPU for 1 s\)"):
        run_isolated(stuck, "landing batch 3", stall_s=1.0)
    assert time.monotonic() - started < 30
    assert "in stuck" in capfd.readouterr().err


def test_a_child_busy_for_longer_than_the_stall_bound_is_waited_for():
    def busy() -> str:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            pass
        return "done"

    assert run_isolated(busy, "a long step", stall_s=0.5) == "done"


def test_the_main_thread_s_cpu_time_grows_with_its_work_and_a_gone_process_has_none():
    before = main_thread_ticks(os.getpid())
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        pass
    assert before is not None and main_thread_ticks(os.getpid()) > before
    assert main_thread_ticks(2**22 + 12345) is None
