"""Ending a process without tearing its interpreter down, once everything it owes is done.

At exit, CPython runs the ``atexit`` handlers, joins the threads that are not daemons, flushes
``sys.stdout`` and ``sys.stderr``, then tears every module down: each object still alive is
deallocated. In a process that has forked children (``rda run`` and its landing children, the
quality worker and its GE jobs), its pages are shared copy-on-write with them, and each write of
that teardown copies one: the quality worker's exit took ~16,000 page faults (~0.05 s), while
``rda run`` waited for it, and ``rda run``'s own took ~0.05 s after its report was printed
(measured with ``perf record -e minor-faults`` and timestamps).

``exit_now`` does what the exit owes — the handlers, the flushes — and ends the process there.
With a thread other than daemons still running, it exits as usual: that thread may be writing.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` after the ``atexit`` handlers and the flush of standard output and
    error, skipping the interpreter's teardown (unless a non-daemon thread still runs)."""
    main = threading.main_thread()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not main):
        raise SystemExit(code)
    atexit._run_exitfuncs()  # logging's flush and close among them
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe, a closed stream: let the interpreter say so
        raise SystemExit(code) from None
    os._exit(code)
