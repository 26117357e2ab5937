"""A process ended by ``exit_now``: what an exit owes is done, the teardown is skipped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(body: str) -> subprocess.CompletedProcess:
    script = "from infra.process_exit import exit_now\n" + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_the_exit_code_buffered_output_and_atexit_handlers_are_kept():
    done = _run(
        """
        import atexit, logging, sys
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
        atexit.register(lambda: print("atexit ran"))
        sys.stdout.write("buffered, not flushed")
        logging.getLogger().warning("logged")
        exit_now(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout == "buffered, not flushedatexit ran\n"
    assert done.stderr == "logged\n"


def test_the_teardown_is_skipped():
    """An object alive at the end is never deallocated (its finalizer would print)."""
    done = _run(
        """
        class Noisy:
            def __del__(self):
                print("torn down")
        kept = Noisy()
        exit_now(0)
        """
    )
    assert done.returncode == 0 and done.stdout == ""


def test_a_thread_still_running_is_waited_for_as_in_a_usual_exit():
    done = _run(
        """
        import threading, time
        def write():
            time.sleep(0.3)
            print("the thread's write", flush=True)
        threading.Thread(target=write).start()
        exit_now(5)
        """
    )
    assert done.returncode == 5 and done.stdout == "the thread's write\n"


def test_an_output_that_cannot_be_flushed_leaves_the_exit_to_the_interpreter():
    done = _run(
        """
        import sys
        class Broken:
            def write(self, text):
                return len(text)
            def flush(self):
                raise BrokenPipeError
        sys.stdout = Broken()
        class Noisy:
            def __del__(self):
                sys.stderr.write("torn down\\n")
        kept = Noisy()
        exit_now(4)
        """
    )
    # The usual exit, after all: the teardown runs, and CPython's own flush fails as well.
    assert done.returncode == 120 and "torn down" in done.stderr
