"""The quality worker's process, started before ``rda run`` knows where it will work.

GE's import and warm-up in the worker (~1.5 CPU-s, niced) are on ``rda run --once``'s critical
path: its jobs start once it is warm, and it warms up mostly in the gaps the run leaves. The
run's own start — its command line parsed, its settings read, which import the wire formats'
adapters and pyarrow — took ~0.2 s before the worker was started, with a core idle. So ``rda
run`` starts it first (``prestart``), as ``python -m streaming.quality_worker`` without a
directory; the run's ``QualityWorker`` takes it (``take``) and says the directory on its input.
A worker that is never told (the run failed first) exits at the end of its input.

The warm-up's scratch folder is made here and named in the worker's environment
(``WARM_UP_DIR_ENV``): a worker let go before it is told exits at once, from its input's
thread, while GE may still be writing there; only once it has exited can the folder be
removed for sure (``let_go``). A worker told where removes it at the end of its warm-up.

Light on purpose: imported before anything else the run needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from infra.process_ends import wait_for_end

WARM_UP_DIR_ENV = "RDA_GE_WARM_UP_DIR"
WARM_UP_PREFIX = "rda-ge-warm-up-"

_started: subprocess.Popen | None = None
_warm_up_dirs: dict[int, str] = {}  # by the worker's pid


def prestart() -> None:
    """Start the worker's process now, unless started already."""
    global _started
    if _started is None:
        scratch = tempfile.mkdtemp(prefix=WARM_UP_PREFIX)
        _started = subprocess.Popen(
            [sys.executable, "-m", "streaming.quality_worker"],
            stdin=subprocess.PIPE,
            env={**os.environ, WARM_UP_DIR_ENV: scratch},
        )
        _warm_up_dirs[_started.pid] = scratch


def take() -> subprocess.Popen | None:
    """The process ``prestart`` started, if it is still running; handed out once."""
    global _started
    started, _started = _started, None
    if started is None or started.poll() is not None:
        return None
    return started


def dismiss() -> None:
    """Let the process ``prestart`` started go, if it has not been taken: its input ends, so it
    exits at once (never told where, it has done nothing)."""
    started = take()
    if started is not None:
        let_go(started)


def let_go(started: subprocess.Popen) -> None:
    """End a worker ``prestart`` started that was never told where (or could not be): its input
    ends, it exits, and then its warm-up's folder is removed."""
    if started.stdin is not None:
        started.stdin.close()
    try:
        wait_for_end(started, 10)
    except subprocess.TimeoutExpired:
        started.kill()
        started.wait()
    scratch = _warm_up_dirs.pop(started.pid, None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
