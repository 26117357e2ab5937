"""``rda status``: consumer lag, the batch journal, the latest checkpoints, the workers.

Status never fails on an outage: what cannot be read (the broker down, the catalog busy) is
reported as such, beside what can.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from infra.state import InfraState
from pipelines.kafka_source import KafkaUnavailable, open_source
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.state_store import topics_with_state
from streaming.config import RunSettings
from streaming.event_state import held_report, windows_history
from streaming.journal import BatchJournal
from streaming.workers import is_alive, prune_dead, running_workers

T = TypeVar("T")
BUSY_WAIT_S = 5.0  # `rda run` holds the files during a batch; they are free between batches


def status_report(settings: RunSettings, limit: int = 10) -> dict[str, Any]:
    """Everything ``rda status`` shows, as one JSON-ready dict."""
    return {
        "data_dir": str(settings.data_dir),
        "group": settings.group,
        "lag": _lag_report(settings),
        **_journal_report(settings.data_dir, limit),
    }


def _open_read_only(open_file: Callable[[], T]) -> T:
    """Open a DuckDB file read-only, waiting while a writer holds it."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            return open_file()
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise TimeoutError from None
            time.sleep(0.2)


def _lag_report(settings: RunSettings) -> dict[str, Any]:
    """Lag per topic-partition, or why it is unknown (status never fails on an outage)."""
    bootstrap = settings.bootstrap or InfraState.load().kafka_bootstrap
    if not bootstrap:
        return {"error": "no Kafka broker: run `rda infra up`, or pass --bootstrap"}
    source = open_source(bootstrap, min(settings.kafka_timeout, 5.0), settings.kafka_client)
    topics: dict[str, Any] = {}
    for topic in settings.topics:
        try:
            ends = source.high_watermarks(topic)
            committed = source.committed(settings.group, topic)
        except KeyError:
            topics[topic] = {"error": f"topic {topic} does not exist"}
            continue
        except KafkaUnavailable as error:
            return {"error": f"{error}", "bootstrap": bootstrap}
        topics[topic] = {
            "partitions": {
                str(p): {
                    "high_watermark": ends[p],
                    "committed": committed.get(p, 0),
                    "lag": ends[p] - committed.get(p, 0),
                }
                for p in sorted(ends)
            },
            "total": sum(ends[p] - committed.get(p, 0) for p in ends),
        }
    return {"bootstrap": bootstrap, "topics": topics}


def _journal_report(data_dir: Path, limit: int) -> dict[str, Any]:
    """The journal's last batches and each dataset's latest checkpoint."""
    layout = DataLayout(data_dir)
    if not layout.catalog.exists():
        raise FileNotFoundError(f"no catalog in {data_dir}: nothing has run there (`rda run`)")
    if not layout.journal.exists():
        return {"journal": {"error": f"no batch journal in {data_dir} yet"}}
    try:
        with _open_read_only(lambda: Catalog(layout, read_only=True)) as catalog:
            latest: dict[str, dict] = {}
            for checkpoint in catalog.checkpoints():
                latest[checkpoint["dataset"]] = checkpoint  # ordered by tree size
            closed = windows_history(catalog, limit)
        with _open_read_only(lambda: BatchJournal(layout.journal, read_only=True)) as journal:
            batches = journal.recent_batches(limit)
            totals = journal.totals()
            held = held_report(layout, journal, topics_with_state(layout))
    except TimeoutError:
        return {"journal": {"error": "catalog busy: a batch is being written"}}
    for b in batches:
        b["created_at"], b["updated_at"] = str(b["created_at"]), str(b["updated_at"])
    return {
        "journal": {"batches": batches, "totals": totals},
        "checkpoints": latest,
        "workers": _workers_report(data_dir, batches),
        "event_time": {"held": held, "closed_windows": closed},
    }


def _workers_report(data_dir: Path, batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workers seen on this data directory: running ones, and owners of recent batches."""
    folder = DataLayout(data_dir).workers
    prune_dead(folder)
    seen = {*running_workers(folder), *(b["owner"] for b in batches if b.get("owner"))}
    return [
        {
            "worker": worker,
            "alive": is_alive(worker, folder),
            "unfinished_batches": [
                b["batch_id"] for b in batches if b.get("owner") == worker and b["state"] != "done"
            ],
        }
        for worker in sorted(seen)
    ]
