"""A step in a forked child per step (``run_isolated``): its answer, or a crash — a stuck child
included, killed once its main thread has used no CPU for the stall bound."""

from __future__ import annotations

import os
import threading
import time

import pytest

from streaming.isolation import WorkerCrashed, imports_settled, main_thread_ticks, run_isolated


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


SLOW_MODULE = "import time\ntime.sleep({seconds})\nVALUE = 42\n"


def _slow_module(tmp_path, monkeypatch, name: str, seconds: float) -> None:
    (tmp_path / f"{name}.py").write_text(SLOW_MODULE.format(seconds=seconds))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_child_forked_while_another_thread_imports_a_module_can_import_it(tmp_path, monkeypatch):
    # The race behind a landing child that never answered: forked while the lag watcher's
    # thread ran `import confluent_kafka`, the child held that module's lock and no thread to
    # release it. The fork waits for the import to end instead.
    _slow_module(tmp_path, monkeypatch, "rda_slow_import_a", 0.5)
    importing = threading.Thread(target=__import__, args=("rda_slow_import_a",))
    importing.start()
    time.sleep(0.1)  # the thread is inside the module's body

    def use_it() -> int:
        return __import__("rda_slow_import_a").VALUE

    try:
        assert run_isolated(use_it, "importing", stall_s=3.0) == 42
    finally:
        importing.join()


def test_a_fork_waits_for_an_import_only_up_to_its_limit(tmp_path, monkeypatch):
    _slow_module(tmp_path, monkeypatch, "rda_slow_import_b", 1.5)
    importing = threading.Thread(target=__import__, args=("rda_slow_import_b",))
    importing.start()
    time.sleep(0.1)
    try:
        started = time.monotonic()
        assert not imports_settled(limit_s=0.2)
        assert 0.2 <= time.monotonic() - started < 1.0
        assert imports_settled(limit_s=5.0)  # once the thread's import has ended
    finally:
        importing.join()
    assert imports_settled(limit_s=0.0)
