"""``rda run`` (the streaming driver) and ``rda status`` (lag, journal, checkpoints)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from cli.output import UserError, emit_json, err, out
from pipelines.kafka_source import CLIENTS
from schemas.adapters import format_choices
from sinks.storage import data_location
from streaming.config import (
    LOG_FORMATS,
    QUALITY_MODES,
    RUNNERS,
    describe,
    kafka_bootstrap,
    load_settings,
)
from streaming.node_cache import SIGNATURE_POLICIES

if TYPE_CHECKING:
    from streaming.config import RunSettings
    from streaming.quality_worker import QualityWorker, QueueOnly

EXIT_CRASH_LOOP = 4  # a batch keeps killing its worker and no single record does
SETTING_FLAGS = (
    "topic", "bootstrap", "group", "data_dir", "interval", "max_batch_records",
    "min_partition_share", "max_chunk_records", "max_chunk_bytes", "format", "chain", "rpc_url",
    "registry", "runner", "dask_scheduler",
    "metrics_port", "log_format", "kafka_timeout", "kafka_client", "retries", "backoff_max",
    "config", "once", "join_group", "crash_limit", "landers", "lag_interval", "work_dir", "window",
    "allowed_lateness", "flush_windows", "node_registry", "signatures", "quality",
    "group_session_timeout", "accept_retention_loss",
)  # fmt: skip


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="the streaming driver: micro-batches until stopped",
        description="Settings come from flags, then RDA_* environment variables (RDA_TOPIC is "
        "comma-separated), then the --config TOML file, then defaults. SIGTERM/SIGINT stop "
        "after the current step; a second signal abandons it (the next start redoes it).",
    )
    _connection_flags(run)
    run.add_argument("--config", type=Path, help="TOML file with [run] and [topics.NAME] tables")
    run.add_argument("--once", action="store_true", help="process what is there, then exit")
    run.add_argument(
        "--join-group",
        action="store_true",
        default=None,
        help="share the partitions with other `rda run` workers of --group (scale-out)",
    )
    run.add_argument(
        "--group-session-timeout",
        type=float,
        help="seconds a silent member keeps its partitions: a killed worker's move after it "
        "(10; the broker may refuse less than its group.min.session.timeout.ms)",
    )
    run.add_argument("--interval", type=float, help="trigger: seconds between batches (5)")
    run.add_argument("--max-batch-records", type=int, help="offsets per batch (2000000)")
    run.add_argument(
        "--min-partition-share",
        type=int,
        help="under a backlog, a batch reads only as many partitions, in turn, as get this many "
        "offsets each (16384; 0: every partition with records waiting, in every batch)",
    )
    run.add_argument("--max-chunk-records", type=int, help="offsets per work item (50000)")
    run.add_argument(
        "--max-chunk-bytes",
        type=int,
        help="bytes of records per work item: one that holds more is split (33554432, 32 MiB)",
    )
    run.add_argument(
        "--format",
        metavar="FORMAT",
        help="wire format of records without an rda-format header: "
        + ", ".join(format_choices())
        + " (default auto: sniff each record's content)",
    )
    run.add_argument("--chain", choices=("embedded", "anvil", "rpc"), help="default: `infra up`")
    run.add_argument("--rpc-url", help="JSON-RPC URL of the chain (with --chain rpc)")
    run.add_argument("--registry", help="AnchorRegistry address (default: deploy one)")
    run.add_argument(
        "--node-registry",
        help="NodeRegistry the device signatures are checked against (default: `infra up`'s)",
    )
    run.add_argument(
        "--signatures",
        choices=SIGNATURE_POLICIES,
        help="device signatures: required, unsigned (a source that cannot sign), or auto "
        "(default: required when a node registry is known)",
    )
    run.add_argument("--runner", choices=RUNNERS, help="Beam runner (fnapi)")
    run.add_argument("--dask-scheduler", help="dask.distributed scheduler (default: local)")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1")
    run.add_argument("--log-format", choices=LOG_FORMATS, help="stderr log lines (text)")
    run.add_argument("--kafka-timeout", type=float, help="seconds before a Kafka call retries")
    run.add_argument(
        "--kafka-client",
        choices=CLIENTS,
        help="confluent (librdkafka, default) or kafka-python (pure Python fallback)",
    )
    run.add_argument("--retries", type=int, help="attempts before giving up, 0: never (30)")
    run.add_argument("--backoff-max", type=float, help="longest wait between retries (30 s)")
    run.add_argument(
        "--crash-limit", type=int, help="worker crashes on one batch before it is bisected (3)"
    )
    run.add_argument(
        "--landers",
        type=int,
        help="landing processes that share a batch of 20,000+ records (2 with 2+ cores, else 1)",
    )
    run.add_argument("--lag-interval", type=float, help="seconds between lag refreshes (15)")
    run.add_argument(
        "--accept-retention-loss",
        action="store_true",
        default=None,
        help="read on past records the broker deleted before the stream read them, recording "
        "their offsets in the batch's plan and manifests (default: stop)",
    )
    run.add_argument(
        "--work-dir",
        type=Path,
        help="this worker's local state (RDA_WORK_DIR; default: the data directory alone, "
        "else a folder of its own)",
    )
    _event_time_flags(run)
    run.add_argument(
        "--quality",
        choices=QUALITY_MODES,
        help="Great Expectations on each anchored checkpoint: in a worker beside the run "
        "(worker, default), or left queued for `rda quality` to validate (queue)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.set_defaults(handler=run_command)

    status = sub.add_parser("status", help="consumer lag, the batch journal, latest checkpoints")
    _connection_flags(status)
    status.add_argument("--config", type=Path, help="the TOML file `rda run` uses")
    status.add_argument("--batches", type=int, default=10, help="journal entries to show")
    status.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    status.set_defaults(handler=status_command)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", action="append", help="topic to read (repeatable)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: `infra up`)")
    parser.add_argument("--group", help="Kafka consumer group (rda-pipeline)")
    parser.add_argument(
        "--data-dir",
        type=data_location,
        help="data directory: a folder, or s3://BUCKET/PREFIX (RDA_DATA_DIR, data)",
    )


def _settings(args: argparse.Namespace):
    return load_settings({name: getattr(args, name, None) for name in SETTING_FLAGS})


def _event_time_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument("--window", type=int, help="event-time window, seconds (3600)")
    run.add_argument(
        "--allowed-lateness", type=int, help="seconds a window waits after its end (300)"
    )
    run.add_argument(
        "--flush-windows",
        action="store_true",
        default=None,
        help="end of input: once every partition is read, close every event-time window",
    )


def run_command(args: argparse.Namespace) -> int:
    from infra.state import InfraState

    settings = _settings(args)
    # Said at once, before the quality worker and the run's imports (~2.5 s before).
    kafka_bootstrap(settings, InfraState.load().kafka_bootstrap)
    with _quality_worker(settings) as quality:
        return _run(args, settings, quality)


@contextmanager
def _quality_worker(settings: RunSettings) -> Iterator[QualityWorker | QueueOnly]:
    """The run's Great Expectations worker, started before the run's own imports: its imports
    (~2 s of GE's) take the core those leave idle. Stopped here if the run never started it.
    With ``--quality queue``, none: the checkpoints wait in the queue for ``rda quality``."""
    from streaming.quality_worker import for_run
    from streaming.store import run_workspace
    from streaming.workers import this_worker

    quality = for_run(settings, run_workspace(settings, this_worker()).work.root)
    quality.start()
    try:
        yield quality
    finally:
        quality.stop(drain_queue=False)  # nothing to do once the run has stopped it


def _run(
    args: argparse.Namespace, settings: RunSettings, quality: QualityWorker | QueueOnly
) -> int:
    from cli import logs
    from proofs.anchor import AnchorRefused
    from streaming.errors import CrashLoop
    from streaming.retry import GaveUp
    from streaming.run_loop import RunLoop

    # A live status line only for a person at a terminal reading text, never for machines.
    live = sys.stderr.isatty() and settings.log_format == "text" and not args.json
    log = logs.configure(settings.log_format, console=err if live else None)
    status_line = (lambda: err.status("starting", spinner="dots")) if live else None
    loop = RunLoop(settings, log, status_line, quality)
    try:
        report = loop.run()
    except GaveUp as error:
        err.print(f"[red]rda: error:[/red] {error.kind}: {escape(str(error))}", soft_wrap=True)
        return 1
    except CrashLoop as error:
        err.print(f"[red]rda: error:[/red] {escape(str(error))}", soft_wrap=True)
        return EXIT_CRASH_LOOP
    except AnchorRefused as error:
        raise UserError(
            f"the chain refused an anchor: {error}; is this registry used by another data "
            "directory? (the batch stays journaled and is redone on the next start)"
        ) from None
    if args.json:
        chain = loop.chain.describe() if loop.chain else None
        emit_json(
            {
                "batches": report.batches,
                "totals": report.totals,
                "stopped_by": report.stopped_by,
                "chain": chain,
                "settings": describe(settings),
            }
        )
    else:
        t = report.totals
        out.print(
            f"{t['batches']} batches: read {t['read']}, published {t['published']}, "
            f"quarantined {t['quarantined']}, suppressed {t['suppressed']}, held {t['held']}"
            + (f" (stopped by {report.stopped_by})" if report.stopped_by else "")
        )
    return 0


def status_command(args: argparse.Namespace) -> int:
    import logging

    from streaming.status import status_report

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # an unreachable broker: one line
    settings = _settings(args)
    try:
        report = status_report(settings, args.batches)
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    if args.json:
        emit_json(report)
    else:
        _print_status(report)
    return 0


def _print_status(report: dict[str, Any]) -> None:
    from rich.table import Table

    lag = report["lag"]
    if "error" in lag:
        out.print(f"lag: unknown ({lag['error']})")
    for topic, entry in lag.get("topics", {}).items():
        if "error" in entry:
            out.print(f"{topic}: {entry['error']}")
            continue
        table = Table(title=f"{topic} — group {report['group']}: lag {entry['total']}")
        for column in ("partition", "committed", "high watermark", "lag"):
            table.add_column(column, justify="right")
        for p, v in entry["partitions"].items():
            table.add_row(p, str(v["committed"]), str(v["high_watermark"]), str(v["lag"]))
        out.print(table)
        if "records_lost" in entry:
            out.print(f"[red]{topic}: records lost:[/red] {escape(entry['records_lost'])}")
    journal = report["journal"]
    if "error" in journal:
        out.print(f"journal: {journal['error']}")
    else:
        table = Table(title="journal (newest first)")
        for column in ("batch", "topic", "state", "read", "published", "quarantined", "updated"):
            table.add_column(column)
        for b in journal["batches"]:
            table.add_row(
                str(b["batch_id"]), b["topic"], b["state"], str(b["records_read"] or ""),
                str(b["records_published"] or ""), str(b["records_quarantined"] or ""),
                b["updated_at"][:19],
            )  # fmt: skip
        out.print(table)
        t = journal["totals"]
        out.print(
            f"done batches: read {t['read']} = published {t['published']} + quarantined "
            f"{t['quarantined']} + suppressed {t['suppressed']}"
        )
    workers = report.get("workers", [])
    if workers:
        table = Table(title="workers")
        for column in ("worker", "alive", "unfinished batches"):
            table.add_column(column)
        for w in workers:
            batches = ", ".join(map(str, w["unfinished_batches"]))
            table.add_row(w["worker"], "yes" if w["alive"] else "no", batches)
        out.print(table)
    _print_event_time(report.get("event_time", {}))
    table = Table(title="latest checkpoints")
    for column in ("dataset", "tree size", "root", "anchor tx"):
        table.add_column(column)
    for dataset, c in report.get("checkpoints", {}).items():
        table.add_row(dataset, str(c["tree_size"]), c["root"][:16] + "…", str(c["anchor_tx"]))
    out.print(table)
    quality = report.get("quality", {})
    if quality.get("reports_pending") is not None:
        out.print(
            f"GE reports: {quality['reports_pending']} pending (a run's quality worker or `rda "
            f"quality` validates them), {quality['reports_failed']} set aside as failed"
        )


def _print_event_time(event_time: dict[str, Any]) -> None:
    """Records held for their event-time window, until when; the last windows' scores."""
    from rich.table import Table

    for topic, held in event_time.get("held", {}).items():
        out.print(
            f"{topic}: {held['held_records']} records held"
            + (f" until the watermark passes {held['held_until']}" if held["held_until"] else "")
            + f"; closed through {held['closed_through']} ({held['window_s']} s windows, "
            f"{held['allowed_lateness_s']} s allowed lateness)"
        )
        for w in held["windows"]:
            out.print(
                f"  window {w['window_start']}: {w['records']} held, closes when the watermark "
                f"passes {w['closes_at_watermark']}"
            )
    closed = event_time.get("closed_windows", [])
    if closed:
        table = Table("source", "window", "quality scores", title="closed windows (newest first)")
        for w in closed:
            scores = ", ".join(f"{d} {s}" for d, s in sorted(w["scores"].items()))
            source = w["topic"] if w.get("partition") is None else f"{w['topic']} p{w['partition']}"
            table.add_row(source, f"{w['window_start']} – {w['window_end']}", scores)
        out.print(table)
