"""The batch journal: each micro-batch's plan and how far it got, written before any work.

A batch is journaled ``planned`` (its offset ranges, its owner) before anything is read, then
moves through ``landed`` (duplicates dropped, its counts known), ``committed`` (its shard and
dataset manifests written), ``anchored`` and ``done`` (Kafka offsets committed). After a crash
the journal says exactly which ranges to redo, so the redo lands byte-identical files
(docs/pipeline.md, "Exactly once").

The journal lives in the data directory's store (``sinks/storage.py``), one JSON object per
batch, ``journal/<topic>/<batch id>.json``, written whole by the batch's owner only: workers on
several machines share it without a lock, and a worker adopting a dead worker's batch reads its
plan there. Batch ids are unique without coordination: the planning time in milliseconds since
2020, shifted left 12 bits, with 12 bits of the worker's id below. A batch that is ``done``
never changes again, so a reader keeps it once read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from sinks.storage import Store

STATES = ("planned", "landed", "committed", "anchored", "done")
PREFIX = "journal"
_EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_issued: dict[str, int] = {}  # per worker tag: the last batch id this process issued
_issue_lock = threading.Lock()


class BatchJournal:
    """A data directory's journal (``location``: its store, or the data directory itself)."""

    def __init__(self, location: Store | Path | str, read_only: bool = False) -> None:
        if not isinstance(location, Store):
            location = Path(location)  # the journal folder, or a data directory's old file
            if location.name in (PREFIX, "journal.duckdb"):
                location = location.parent
            location = Store.open(location)
        self.store = location
        self.read_only = read_only
        self._done: dict[str, dict[str, Any]] = {}  # object path -> a done entry (immutable)
        self._paths: dict[int, str] = {}  # batch id -> object path

    def close(self) -> None:
        pass

    def __enter__(self) -> BatchJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def next_batch_id(self, worker: str = "") -> int:
        """A batch id no other worker issues (see the module docstring), larger than any this
        process issued before."""
        tag = int.from_bytes(hashlib.sha256(worker.encode()).digest()[:2], "big") & 0xFFF
        with _issue_lock:
            now = max(int(time.time() * 1000) - _EPOCH_MS, (_issued.get(worker, 0) >> 12) + 1)
            _issued[worker] = batch_id = now << 12 | tag
        return batch_id

    def record_plan(self, batch_id: int, topic: str, plan: dict, owner: str | None = None) -> None:
        """A new batch, ``planned``: its ranges are never planned again by anyone."""
        now = _now()
        self._write(
            {
                "batch_id": batch_id,
                "topic": topic,
                "state": "planned",
                "plan": plan,
                "owner": owner,
                "records_read": None,
                "records_published": None,
                "records_quarantined": None,
                "records_held": None,
                "created_at": now,
                "updated_at": now,
            }
        )

    def set_state(self, batch_id: int, state: str, **counts: int) -> None:
        if state not in STATES:
            raise ValueError(f"unknown batch state {state!r}")
        entry = self.batch(batch_id)
        entry.update(state=state, updated_at=_now(), **counts)
        self._write(entry)

    def record_sequencing(self, batch_id: int, plan: dict, **counts: int) -> None:
        """Duplicates dropped, counts known: state ``landed``."""
        entry = self.batch(batch_id)
        entry.update(plan=plan, state="landed", updated_at=_now(), **counts)
        self._write(entry)

    def update_plan(self, batch_id: int, plan: dict) -> None:
        """Rewrite a batch's plan (its ranges never change; crashes and poison offsets do)."""
        entry = self.batch(batch_id)
        entry.update(plan=plan, updated_at=_now())
        self._write(entry)

    def set_owner(self, batch_id: int, owner: str) -> None:
        entry = self.batch(batch_id)
        entry.update(owner=owner, updated_at=_now())
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        if self.read_only:
            raise PermissionError("the journal was opened read-only")
        path = f"{PREFIX}/{entry['topic']}/{entry['batch_id']:016d}.json"
        self._paths[entry["batch_id"]] = path
        self.store.write_bytes(path, _encode(entry), durable=True)
        if entry["state"] == "done":
            self._done[path] = entry

    # -- reading ----------------------------------------------------------------------------

    def batch(self, batch_id: int) -> dict[str, Any]:
        """One journal entry (a copy), plan decoded; ``KeyError`` when there is none."""
        path = self._paths.get(batch_id)
        if path is None:
            self.entries()  # indexes every batch's path
            path = self._paths.get(batch_id)
            if path is None:
                raise KeyError(f"no batch {batch_id} in the journal")
        cached = self._done.get(path)
        return json.loads(json.dumps(cached)) if cached else self._read(path)

    def entries(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Every journal entry (of one topic, or of all), oldest first."""
        prefix = f"{PREFIX}/{topic}" if topic is not None else PREFIX
        found = []
        for path in self.store.list(prefix, ".json"):
            entry = self._done.get(path)
            if entry is None:
                try:
                    entry = self._read(path)
                except (FileNotFoundError, ValueError):
                    continue  # being replaced, or not a journal entry
                if entry["state"] == "done":
                    self._done[path] = entry
            self._paths[entry["batch_id"]] = path
            found.append(entry)
        return sorted(found, key=lambda e: e["batch_id"])

    def _read(self, path: str) -> dict[str, Any]:
        entry = json.loads(self.store.read_bytes(path))
        if not isinstance(entry, dict) or "batch_id" not in entry:
            raise ValueError(f"{path} is not a journal entry")
        return entry

    def unfinished_batches(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Journal entries not yet ``done``, oldest first (of one topic, or of all)."""
        return [e for e in self.entries(topic) if e["state"] != "done"]

    def unfinished_counts(self) -> dict[str, int]:
        """Per topic, the batches not yet ``done``."""
        counts: dict[str, int] = {}
        for entry in self.unfinished_batches():
            counts[entry["topic"]] = counts.get(entry["topic"], 0) + 1
        return counts

    def unfinished_topics(self) -> list[str]:
        """Topics with an unfinished batch, oldest batch first."""
        return list(dict.fromkeys(e["topic"] for e in self.unfinished_batches()))

    def journal_ends(self, topic: str) -> dict[int, int]:
        """Per partition, the end of the furthest range any batch of ``topic`` has planned."""
        ends: dict[int, int] = {}
        for entry in self.entries(topic):
            for r in entry["plan"].get("ranges", []):
                ends[r["partition"]] = max(ends.get(r["partition"], 0), r["end"])
        return ends

    def state_head(self, topic: str, partition: int) -> int | None:
        """The batch whose event-time state of the partition is the latest
        (``streaming/event_time.py``): of the batches sequenced (``landed`` or later), the one
        whose state of it came last."""
        head, newest = None, 0
        for entry in self.entries(topic):
            info = _state_of(entry, partition)
            if entry["state"] != "planned" and info is not None and info["position"] > newest:
                head, newest = entry["batch_id"], info["position"]
        return head

    def state_bases(self, topic: str, partition: int) -> set[int]:
        """The partition's state snapshots unfinished batches started from (a redo needs them)."""
        bases = set()
        for entry in self.entries(topic):
            info = _state_of(entry, partition)
            if entry["state"] not in ("planned", "done") and info and info["base"] is not None:
                bases.add(info["base"])
        return bases

    def recent_batches(self, limit: int = 10) -> list[dict[str, Any]]:
        """The journal's last ``limit`` batches, newest first, without their plans."""
        newest = self.entries()[::-1][:limit]
        return [{k: v for k, v in e.items() if k not in ("plan", "windows")} for e in newest]

    def closed_windows(self, limit: int = 10) -> list[dict[str, Any]]:
        """The last ``limit`` event-time windows closed, newest first: per topic, partition
        and window, every dataset's quality score (as the batches that closed them recorded)."""
        found: dict[tuple, dict[str, Any]] = {}
        for entry in self.entries():
            for w in entry.get("windows") or []:
                key = (w["topic"], w.get("partition"), w["window_start"])
                one = found.setdefault(key, {k: w.get(k) for k in ("topic", "partition")})
                one.update(window_start=w["window_start"], window_end=w["window_end"])
                one.setdefault("scores", {})[w["dataset"]] = w["score"]
        newest = sorted(found.values(), key=lambda w: (w["window_start"], w["topic"]))
        return newest[::-1][:limit]

    def totals(self) -> dict[str, int]:
        """Records read, published, quarantined, suppressed and held by every ``done`` batch.

        A batch's ``records_held`` is the change it made to the records on hold (negative when
        it released more than it held), so the totals reconcile:
        read = published + quarantined + suppressed + held."""
        done = [e for e in self.entries() if e["state"] == "done"]
        read = sum(e["records_read"] or 0 for e in done)
        published = sum(e["records_published"] or 0 for e in done)
        quarantined = sum(e["records_quarantined"] or 0 for e in done)
        held = sum(e.get("records_held") or 0 for e in done)
        return {
            "read": read,
            "published": published,
            "quarantined": quarantined,
            "suppressed": read - published - quarantined - held,
            "held": held,
        }

    def window_seconds(self, topic: str) -> float:
        """Seconds from the topic's first batch planned to its last batch updated."""
        entries = self.entries(topic)
        if not entries:
            return 0.0
        first = min(_parse(e["created_at"]) for e in entries)
        last = max(_parse(e["updated_at"]) for e in entries)
        return last - first


def _state_of(entry: dict[str, Any], partition: int) -> dict[str, Any] | None:
    """The batch's event-time state info of ``partition`` (base, position), if it has one."""
    state = entry["plan"].get("state")
    return state.get(str(partition)) if isinstance(state, dict) else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _parse(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _encode(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, sort_keys=True) + "\n").encode()
