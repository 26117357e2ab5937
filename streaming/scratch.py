"""Beam's temporary folders in the work directory, not in the machine's ``/tmp``.

Beam makes a folder for every pipeline it constructs (``tempfile.mkdtemp``, under
``tempfile.gettempdir()``) and removes it when the pipeline's run ends. A landing child killed
mid-pipeline — a record that crashes a parser, ``kill -9`` — never removes it: in ``/tmp`` they
gathered for good (15 a CI run). A landing makes them under ``private/scratch/<pid>/`` of its
work directory instead (``scratch``), and a run's start removes the folders of processes that
are gone (``sweep_scratch``). The claims of an event-time step shared with a landing child
(``streaming/shared_step.py``) are made in the run's own folder, and swept with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sinks.layout import DataLayout


def scratch_root(work: DataLayout) -> Path:
    return work.private / "scratch"


@contextlib.contextmanager
def scratch(work: DataLayout) -> Iterator[Path]:
    """This process's temporary files go to its own folder of ``work`` while inside.

    ``tempfile.tempdir`` is the process's: another thread's temporary files made meanwhile go
    there too, and are removed with it once the process is gone (never while it runs). Left
    empty, the folder is removed on the way out."""
    folder = scratch_root(work) / str(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    previous, tempfile.tempdir = tempfile.tempdir, str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        with contextlib.suppress(OSError):  # kept while anything is left in it
            folder.rmdir()


def sweep_scratch(work: DataLayout) -> int:
    """Remove the scratch folders of processes that no longer run; how many."""
    root = scratch_root(work)
    if not root.is_dir():
        return 0
    removed = 0
    for folder in root.iterdir():
        if folder.name.isdigit() and not _running(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now has that number: not ours to judge
        return True
    return True
