"""``rda status``: consumer lag, the batch journal, the latest checkpoints, the workers.

Status never fails on an outage: what cannot be read (the broker down, the catalog busy) is
reported as such, beside what can.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from infra.state import InfraState
from pipelines.kafka_source import (
    KafkaSource,
    KafkaUnavailable,
    Positions,
    RecordsLost,
    offsets_text,
    open_source,
    read_on_from,
)
from sinks.layout import DataLayout
from sinks.state_store import partitions_with_state
from sinks.storage import Store
from streaming.config import RunSettings, kafka_bootstrap
from streaming.errors import SettingsError
from streaming.event_state import held_report
from streaming.journal import BatchJournal
from streaming.journal_report import journal_report
from streaming.quality_queue import failed_jobs, pending
from streaming.workers import is_alive, prune_dead, running_workers


def status_report(settings: RunSettings, limit: int = 10) -> dict[str, Any]:
    """Everything ``rda status`` shows, as one JSON-ready dict. The data directory is read
    first: one nothing ran in is an error at once, not after the broker's timeout."""
    journal = _journal_report(settings.data_dir, limit)
    return {
        "data_dir": str(settings.data_dir),
        "group": settings.group,
        "lag": _lag_report(settings),
        **journal,
    }


def _lag_report(settings: RunSettings) -> dict[str, Any]:
    """Lag per topic-partition, or why it is unknown (status never fails on an outage)."""
    try:
        bootstrap = kafka_bootstrap(settings, InfraState.load().kafka_bootstrap)
    except SettingsError as error:
        return {"error": str(error)}
    source = open_source(bootstrap, min(settings.kafka_timeout, 5.0), settings.kafka_client)
    topics: dict[str, Any] = {}
    for topic in settings.topics:
        try:
            ends = source.high_watermarks(topic)
            committed = source.committed(settings.group, topic)
            lost = _records_lost(settings, source, topic, Positions(committed, ends))
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
            **({"records_lost": lost} if lost else {}),
        }
    return {"bootstrap": bootstrap, "topics": topics}


def _records_lost(
    settings: RunSettings, source: KafkaSource, topic: str, positions: Positions
) -> str | None:
    """Why the stream stopped on ``topic`` (``read_on_from``: its log no longer holds what the
    stream stands on), or which deleted offsets its next batch skips where the settings accept
    retention's loss; None: the lag alone would say records wait to be read."""
    journal = BatchJournal(Store.open(settings.data_dir), read_only=True)
    try:
        positions = positions._replace(
            topic_id=source.topic_id(topic), log_starts=source.log_starts(topic)
        )
        planned, read_ids = journal.planned(topic)
        read_on = read_on_from(topic, positions, planned, read_ids, settings.accept_retention_loss)
    except RecordsLost as error:
        return str(error)
    if read_on.lost:
        return (
            f"the broker deleted records of {topic} before this stream read them (retention); "
            f"its next batch skips them (accept_retention_loss): {offsets_text(read_on.lost)}"
        )
    return None


def _journal_report(data_dir: Path | str, limit: int) -> dict[str, Any]:
    """The journal's last batches, each dataset's latest checkpoint, the workers, what is held
    for event-time windows: all read from the data directory's store (every worker's, whatever
    machine it runs on)."""
    store = Store.open(data_dir)
    journal = BatchJournal(store, read_only=True)
    report = journal_report(journal, limit)
    batches = report["batches"]
    if not batches and not store.list("published", ".manifest.json"):
        raise FileNotFoundError(f"nothing has run in {data_dir} (`rda run`)")
    scratch = DataLayout(_scratch_dir(store))  # where the store's state files are read
    held = held_report(scratch, journal, partitions_with_state(scratch, store), store)
    return {
        "journal": {"batches": batches, "totals": report["totals"]},
        "checkpoints": latest_checkpoints(store),
        "workers": _workers_report(store, batches),
        "event_time": {"held": held, "closed_windows": report["closed_windows"]},
        "quality": _quality_report(store),
    }


def _quality_report(store: Store) -> dict[str, int | None]:
    """GE's queue, in the work directory (a local data directory's own; None otherwise):
    anchored checkpoints whose report is not attested yet, and jobs set aside as failed."""
    if not store.local:
        return {"reports_pending": None, "reports_failed": None}
    layout = DataLayout(store.local)
    return {"reports_pending": len(pending(layout)), "reports_failed": len(failed_jobs(layout))}


def _scratch_dir(store: Store) -> Path:
    """A local folder to read the store's state snapshots in: the data directory itself when
    it is local, else a cache under RDA_STATE_DIR (snapshots never change once written)."""
    if store.local is not None:
        return store.local
    from infra.state import state_dir

    return state_dir() / "status" / hashlib.sha256(store.uri.encode()).hexdigest()[:16]


def latest_checkpoints(store: Store) -> dict[str, dict[str, Any]]:
    """Each dataset's newest anchored checkpoint, as its manifest and anchor record say."""
    newest: dict[str, tuple[int, str]] = {}
    for path in store.list("published", ".manifest.json"):
        parts = path.split("/")
        if len(parts) == 4 and parts[2] == "checkpoints" and parts[3][:12].isdigit():
            size = int(parts[3].split(".")[0])
            if size > newest.get(parts[1], (-1, ""))[0]:
                newest[parts[1]] = (size, path)
    latest = {}
    for dataset, (size, path) in sorted(newest.items()):
        data = store.read_bytes(path)
        manifest = json.loads(data)
        entry = {
            "dataset": dataset,
            "tree_size": size,
            "root": manifest["checkpoint"]["root"],
            "manifest_path": path,
            "manifest_sha256": hashlib.sha256(data).hexdigest(),
            "shards": len(manifest.get("shards", [])) or None,
            "quality_score": (manifest.get("quality") or {}).get("score"),
        }
        with contextlib.suppress(FileNotFoundError, ValueError):
            entry.update(
                store.read_json(f"published/{dataset}/checkpoints/{size:012d}.anchor.json")
            )
        latest[dataset] = entry
    return latest


def _workers_report(folder: Store, batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workers seen on this data directory: running ones, and owners of recent batches."""
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
