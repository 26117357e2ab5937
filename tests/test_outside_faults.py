"""Outside faults end in one clear line, and retries see through wrappers to the cause.

A full disk is a real one: a small tmpfs mounted under the dataset's data folder, so the Parquet
write inside Beam's DoFn is what fails (Beam wraps its ``OSError`` in a ``RuntimeError``). The
run retries it as a disk fault, gives up with one ``rda: error:`` line after ``--retries``, and
once space is freed a restart publishes every record exactly once.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from run_helpers import assert_exactly_once, run_args, start_run

from streaming.retry import failure_kind, is_transient, short

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def _disk_full(_element: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet")


def test_a_disk_full_inside_beam_is_a_transient_disk_fault_named_by_its_cause():
    with pytest.raises(Exception) as raised:  # whatever Beam wraps it in
        options = PipelineOptions(["--no_pipeline_type_check"])
        with beam.Pipeline(runner=FnApiRunner(), options=options) as pipeline:
            pipeline | beam.Create([1]) | beam.Map(_disk_full)
    assert type(raised.value) is RuntimeError  # Beam's wrapper, not the OSError itself
    assert is_transient(raised.value)
    assert failure_kind(raised.value) == "disk"
    assert short(raised.value).startswith("OSError: [Errno 28] No space left on device")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (a real file system that fills up); skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> None:
    """Write until the file system says ENOSPC."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 1 << 14, 1 << 10, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_disk_is_retried_then_one_error_line_and_a_restart_after_freeing_space(
    broker, topic, tmp_path, publish, anvil, registry, small_disk
):
    produced = publish(broker, topic, nodes=4, duration_s=10).messages
    data, log = tmp_path / "data", tmp_path / "run.log"
    (data / "published" / "radio_kpi.v1").mkdir(parents=True)
    os.symlink(small_disk, data / "published" / "radio_kpi.v1" / "shards")  # its shards' files
    fill(small_disk)
    args = run_args(broker.bootstrap, topic, data, anvil.rpc_url, registry.address)
    full = start_run(*args, "--once", "--retries", "3", "--backoff-max", "0.2",
                     state=tmp_path / "state", log=log)  # fmt: skip
    full.communicate(timeout=240)
    text = log.read_text()
    assert full.returncode == 1, text[-3000:]
    assert "failed (attempt 2): OSError: [Errno 28] " in text
    (line,) = [line for line in text.splitlines() if line.startswith("rda: error:")]
    assert line.startswith("rda: error: disk: batch on") and "No space left on device" in line
    assert "Traceback" not in text

    (small_disk / "filler").unlink()
    again = start_run(*args, "--once", state=tmp_path / "state", log=log)
    again.communicate(timeout=240)
    assert again.returncode == 0, log.read_text()[-3000:]
    assert_exactly_once(broker.bootstrap, topic, data, registry, produced)


def test_an_unwritable_data_directory_is_one_error_line_with_exit_3(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--once", "--bootstrap", "127.0.0.1:1",
         "--data-dir", str(blocker / "data"), "--chain", "embedded"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "RDA_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("rda: error: ") and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_unknown_format_is_refused_naming_the_known_ones(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--once", "--format", "rda.node.v2",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "RDA_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown wire format 'rda.node.v2' (known: auto, rda.node.v1, gnmi.json" in (
        result.stderr
    )


def test_run_help_lists_the_formats_and_the_default():
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--help"], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    text = " ".join(result.stdout.split())
    assert "auto, rda.node.v1, gnmi.json, ems.csv, ripe.atlas.result" in text
    assert "(default auto: sniff each record's content)" in text
