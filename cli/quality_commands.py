"""``rda quality``: Great Expectations over the checkpoints a run left queued.

``rda run --quality queue`` anchors and publishes as ever but validates nothing: each anchored
checkpoint's GE job waits in the work directory's queue. This command takes that queue with the
same worker ``rda run`` starts beside itself (``streaming/quality_worker.py``): each checkpoint
validated, its report hashed into a signed attestation, Data Docs rebuilt. Until the queue is
empty; with ``--watch``, as checkpoints keep coming, until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from cli.output import UserError, emit_json, out
from sinks.storage import data_location, is_remote

if TYPE_CHECKING:
    from streaming.quality_worker import QualityWorker

WATCH_INTERVAL_S = 5.0


def add_parser(sub: argparse._SubParsersAction, default_data_dir: Path) -> None:
    quality = sub.add_parser(
        "quality",
        help="Great Expectations over the checkpoints `rda run --quality queue` left queued",
        description="Validates each queued checkpoint with Great Expectations, oldest first, "
        "writes its report and signed attestation and rebuilds the Data Docs, as `rda run`'s "
        "own worker does. Exits when the queue is empty; with --watch, keeps taking new "
        "checkpoints until stopped (SIGTERM, Ctrl-C: the current one is finished first).",
    )
    quality.add_argument(
        "--data-dir", type=data_location, default=default_data_dir, help="the run's --data-dir"
    )
    quality.add_argument(
        "--work-dir",
        type=Path,
        help="the run's --work-dir (default: the data directory; required for s3://)",
    )
    quality.add_argument("--watch", action="store_true", help="keep taking new checkpoints")
    quality.add_argument(
        "--interval",
        type=float,
        default=WATCH_INTERVAL_S,
        help=f"with --watch: seconds between looks at the queue ({WATCH_INTERVAL_S:g})",
    )
    quality.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    quality.set_defaults(handler=quality_command)


def quality_command(args: argparse.Namespace) -> int:
    from sinks.layout import DataLayout
    from streaming.quality_queue import attestations, failed_jobs, pending
    from streaming.quality_worker import QualityWorker

    if not args.interval > 0:  # 0 would look at the queue in a busy loop
        raise UserError(f"--interval must be a positive number of seconds, not {args.interval}")
    work_dir = _work_dir(args.data_dir, args.work_dir)
    layout = DataLayout(work_dir)
    attested, failed = len(attestations(layout)), len(failed_jobs(layout))
    worker = QualityWorker(args.data_dir, work_dir)
    if args.watch:
        _watch(worker, args.interval)
    elif pending(layout):
        worker.start()
        worker.stop(drain_queue=True, timeout_s=None)
    report = {
        "attested": len(attestations(layout)) - attested,
        "failed": len(failed_jobs(layout)) - failed,
        "pending": len(pending(layout)),
    }
    if args.json:
        emit_json(report)
    else:
        out.print(
            f"{report['attested']} checkpoint(s) validated and attested, {report['failed']} "
            f"set aside as failed, {report['pending']} still queued"
        )
    return 1 if report["failed"] else 0


def _work_dir(data_dir: Path | str, work_dir: Path | None) -> Path:
    if work_dir is not None:
        if not work_dir.is_dir():
            raise UserError(f"work directory {work_dir} does not exist")
        return work_dir
    if is_remote(data_dir):
        raise UserError(f"{data_dir} is remote: give the run's --work-dir, where its queue is")
    if not Path(data_dir).is_dir():
        raise UserError(f"data directory {data_dir} does not exist")
    return Path(data_dir)


def _watch(worker: QualityWorker, interval: float) -> None:
    """Keep a worker running while jobs are queued, until a signal; then let it end its job."""
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    worker.start()
    try:
        while not stop.wait(interval):
            worker.nudge()  # restarted if it died
    finally:
        worker.stop(drain_queue=False)
