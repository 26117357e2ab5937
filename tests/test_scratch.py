"""Beam's temporary folders: in the work directory while a landing runs, gone once its process
is, never left in the machine's temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import apache_beam as beam

from sinks.layout import DataLayout
from streaming.scratch import scratch, scratch_root, sweep_scratch

PREFIX = "beam-pipeline-temp"  # Beam's name for a pipeline's folder


def beam_folders(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{PREFIX}*"))


def test_a_pipeline_made_while_landing_keeps_its_folder_in_the_work_directory(tmp_path):
    work = DataLayout(tmp_path / "work")
    with scratch(work) as folder:
        pipeline = beam.Pipeline()
        assert Path(pipeline.local_tempdir).parent == folder
        assert folder == scratch_root(work) / str(os.getpid())
    assert tempfile.gettempdir() != str(folder)  # the process's own setting is back
    assert folder.is_dir()  # Beam's folder is still in it: the pipeline never ran
    shutil.rmtree(pipeline.local_tempdir)  # as Beam does when the pipeline's run ends
    with scratch(work):
        pass
    assert not folder.exists()  # left empty: removed


def test_the_folder_of_a_landing_killed_mid_pipeline_is_removed_at_the_next_start(tmp_path):
    work = DataLayout(tmp_path / "work")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: a landing that dies without Beam's clean-up
        with scratch(work):
            beam.Pipeline()
            os._exit(9)
    os.waitpid(pid, 0)
    (left,) = beam_folders(scratch_root(work) / str(pid))
    with scratch(work) as mine:  # this process's own folder, in use
        assert sweep_scratch(work) == 1
        assert mine.is_dir()  # a running process's is kept
    assert not left.exists() and not (scratch_root(work) / str(pid)).exists()
