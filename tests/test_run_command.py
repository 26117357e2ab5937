"""``rda run``'s command: the quality worker it starts before the run's own imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from streaming import run_loop
from streaming.quality_worker import QualityWorker


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[QualityWorker]:
    """Every quality worker started in this test (no infrastructure state of its own)."""
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    workers: list[QualityWorker] = []
    start = QualityWorker.start

    def recorded(worker: QualityWorker) -> None:
        workers.append(worker)
        start(worker)

    monkeypatch.setattr(QualityWorker, "start", recorded)
    return workers


def test_the_loop_gets_a_quality_worker_already_running_on_its_work_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, started: list[QualityWorker]
) -> None:
    seen: dict[str, object] = {}

    class Loop:  # the loop as it is handed the worker, with no broker or chain behind it
        def __init__(self, settings, log, status_line, quality) -> None:
            seen["running"] = quality.process is not None and quality.process.poll() is None
            seen["work"] = quality.layout.root

        def run(self) -> run_loop.RunReport:
            return run_loop.RunReport()

    monkeypatch.setattr(run_loop, "RunLoop", Loop)
    data = tmp_path / "data"
    assert main(["run", "--once", "--bootstrap", "127.0.0.1:9", "--data-dir", str(data)]) == 0
    assert seen == {"running": True, "work": data.absolute()}
    (worker,) = started
    assert worker.process is not None and worker.process.returncode == 0  # stopped, and waited for


def test_a_run_that_cannot_start_stops_the_quality_worker_it_started(
    tmp_path: Path, started: list[QualityWorker]
) -> None:
    data = tmp_path / "data"
    # A group of workers cannot share the chain that lives inside one of them: the run stops
    # after its worker started.
    command = ["run", "--once", "--bootstrap", "127.0.0.1:9", "--join-group", "--chain"]
    assert main([*command, "embedded", "--data-dir", str(data)]) == 2
    (worker,) = started
    assert worker.process is not None and worker.process.returncode == 0


def test_a_run_with_no_broker_anywhere_says_so_before_starting_a_quality_worker(
    tmp_path: Path, started: list[QualityWorker], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--once", "--data-dir", str(tmp_path / "data")]) == 2
    assert "no Kafka broker" in capsys.readouterr().err
    assert started == []
