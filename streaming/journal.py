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
from dataclasses import dataclass
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
            self._index_paths()
            path = self._paths.get(batch_id)
            if path is None:
                raise KeyError(f"no batch {batch_id} in the journal")
        cached = self._done.get(path)
        return json.loads(json.dumps(cached)) if cached else self._read(path)

    def _index_paths(self) -> None:
        """Every batch's object path, from the objects' names (``<batch id>.json``): none read."""
        for path in self.store.list(PREFIX, ".json"):
            name = path.rsplit("/", 1)[-1].removesuffix(".json")
            if name.isdigit():
                self._paths.setdefault(int(name), path)

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

    def _unfinished(self, topic: str | None) -> tuple[dict[str, _DoneFold], list[dict[str, Any]]]:
        """Per topic, what its ``done`` entries tell the per-batch questions (each read once in
        the process: a done entry never changes), and the entries not done, read now.

        A stream's journal grows by one entry a batch: reading every entry again for each
        question made a batch's planning and event-time step grow with the stream's age."""
        if topic is None:
            listed = self.store.list(PREFIX, ".json")
        else:  # the topic's folder: flat, one object per batch
            listed = self.store.list_folder(f"{PREFIX}/{topic}", ".json")
        by_topic: dict[str, list[str]] = {}
        for path in listed:
            by_topic.setdefault(path.split("/")[1], []).append(path)
        folds, unfinished = {}, []
        with _folds_lock:
            for name, paths in by_topic.items():
                key = (self.store.uri, name)
                fold = _folds.get(key)
                if fold is None or not fold.seen.issubset(paths):  # entries gone: made anew
                    fold = _folds[key] = _DoneFold()
                for path in paths:
                    if path in fold.seen:
                        continue
                    try:
                        entry = self._done.get(path) or self._read(path)
                    except (FileNotFoundError, ValueError):
                        continue  # being replaced, or not a journal entry
                    self._paths[entry["batch_id"]] = path
                    if entry["state"] == "done":
                        fold.add(path, entry)
                    else:
                        unfinished.append(entry)
                folds[name] = fold
        return folds, sorted(unfinished, key=lambda e: e["batch_id"])

    def _read(self, path: str) -> dict[str, Any]:
        entry = json.loads(self.store.read_bytes(path))
        if not isinstance(entry, dict) or "batch_id" not in entry:
            raise ValueError(f"{path} is not a journal entry")
        return entry

    def unfinished_batches(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Journal entries not yet ``done``, oldest first (of one topic, or of all)."""
        return self._unfinished(topic)[1]

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
        folds, unfinished = self._unfinished(topic)
        ends = dict(folds[topic].ends) if topic in folds else {}
        for entry in unfinished:
            for r in entry["plan"].get("ranges", []):
                ends[r["partition"]] = max(ends.get(r["partition"], 0), r["end"])
        return ends

    def state_head(self, topic: str, partition: int) -> int | None:
        """The batch whose event-time state of the partition is the latest
        (``streaming/event_time.py``): of the batches sequenced (``landed`` or later), the one
        whose state of it came last."""
        return self.state_view(topic).latest(partition)[0]

    def state_view(self, topic: str) -> StateView:
        """The event-time states of the topic's partitions as the journal is now (one reading
        of it for several partitions' questions)."""
        folds, unfinished = self._unfinished(topic)
        return StateView(folds.get(topic), unfinished)

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


class _DoneFold:
    """A topic's ``done`` entries as the per-batch questions need them, each folded in once:
    per partition the furthest planned offset and the newest event-time state."""

    __slots__ = ("ends", "heads", "seen")

    def __init__(self) -> None:
        self.seen: set[str] = set()  # the entries' object paths
        self.ends: dict[int, int] = {}  # partition -> the end of its furthest range
        self.heads: dict[int, tuple[int, int]] = {}  # partition -> (position, batch id)

    def add(self, path: str, entry: dict[str, Any]) -> None:
        self.seen.add(path)
        for r in entry["plan"].get("ranges", []):
            self.ends[r["partition"]] = max(self.ends.get(r["partition"], 0), r["end"])
        state = entry["plan"].get("state")
        for key, info in (state or {}).items() if isinstance(state, dict) else ():
            newest = self.heads.get(int(key))
            mine = (info["position"], entry["batch_id"])
            if mine[0] <= 0:
                continue
            # The newest position; of equal ones the first batch, as a scan in id order finds
            if newest is None or (mine[0], -mine[1]) > (newest[0], -newest[1]):
                self.heads[int(key)] = mine


@dataclass(frozen=True)
class StateView:
    """A topic's event-time states per partition, from one reading of the journal."""

    done: _DoneFold | None
    unfinished: list[dict[str, Any]]  # oldest first

    def latest(self, partition: int) -> tuple[int | None, int]:
        """The batch whose state of the partition came last and that state's position (None
        and 0 when it has none): of equal positions the first batch."""
        newest, head = self.done.heads.get(partition, (0, None)) if self.done else (0, None)
        for entry in self.unfinished:
            info = _state_of(entry, partition)
            if entry["state"] == "planned" or info is None or info["position"] <= 0:
                continue
            if (info["position"], -entry["batch_id"]) > (newest, -(head or 0)):
                head, newest = entry["batch_id"], info["position"]
        return head, newest

    def bases(self, partition: int) -> set[int]:
        """The states unfinished batches (landed or later) of the partition started from: a
        redo needs them."""
        bases = set()
        for entry in self.unfinished:
            info = _state_of(entry, partition)
            if entry["state"] != "planned" and info and info["base"] is not None:
                bases.add(info["base"])
        return bases


_folds: dict[tuple[str, str], _DoneFold] = {}  # (store, topic) -> its done entries, folded
_folds_lock = threading.Lock()


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
