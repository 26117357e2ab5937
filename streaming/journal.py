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
import logging
import threading
import time
from pathlib import Path
from typing import Any

from sinks.storage import Store
from streaming import journal_segments
from streaming.journal_fold import DoneFold, StateView, counts, planned_ends, with_suppressed
from streaming.journal_objects import NotAnEntry, read_entry, segment_entries, segment_header

log = logging.getLogger("rda.journal")

STATES = ("planned", "landed", "committed", "anchored", "done")
PREFIX = "journal"
_EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
LISTINGS = 3  # a listing that contradicts what was folded is taken again, this many times
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
        self._paths = _located.setdefault(location.uri, {})  # batch id -> its loose object

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
        """Rewrite a batch's plan (crashes and poison offsets change; its ranges do not, but for
        the starts of those whose first offsets retention deleted: ``streaming/records_lost``)."""
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

    def compact(self, topic: str, at_least: int | None = None) -> int:
        """Once ``at_least`` (``SEGMENT_ENTRIES``) of the topic's done entries are loose, as
        this process folded them in, write them into one segment, then delete them; how many.
        Cheap otherwise: no listing (``streaming/journal_segments.py``)."""
        at_least = at_least or journal_segments.SEGMENT_ENTRIES
        fold = _folds.get((self.store.uri, topic))
        if self.read_only or fold is None or len(fold.loose) < at_least:
            return 0
        with _folds_lock:
            taken = []
            for path in sorted(fold.loose):
                try:
                    taken.append((path, self._done.get(path) or self._read(path)))
                except FileNotFoundError:
                    continue  # compacted by another worker: its segment holds it
            if not taken:
                return 0
            path, data = journal_segments.segment(f"{PREFIX}/{topic}", [e for _, e in taken])
            self.store.write_bytes(path, data, durable=True)  # before any loose one goes
            fold.segments.add(path)
            for loose, entry in taken:
                self.store.delete(loose)
                fold.loose.discard(loose)
                self._done.pop(loose, None)
                if self._paths.get(entry["batch_id"]) == loose:
                    del self._paths[entry["batch_id"]]
        log.info("journal of %s: %d done entries compacted into %s", topic, len(taken), path)
        return len(taken)

    # -- reading ----------------------------------------------------------------------------

    def batch(self, batch_id: int) -> dict[str, Any]:
        """One journal entry (a copy), plan decoded; ``KeyError`` when there is none."""
        entry = self._find(batch_id)
        if entry is None:
            raise KeyError(f"no batch {batch_id} in the journal")
        return json.loads(json.dumps(entry))

    def _find(self, batch_id: int) -> dict[str, Any] | None:
        """The entry where this process last saw it, else found by the objects' names (a loose
        object's is its batch id, a segment's its range of ids): only what holds it is read."""
        path = self._paths.get(batch_id)
        if path is not None:
            try:
                return self._done.get(path) or self._read(path)
            except FileNotFoundError:
                pass  # compacted into a segment since
        holding = []
        for path in self.store.list(PREFIX, ".json"):
            if journal_segments.is_segment(path):
                first, last = journal_segments.id_range(path)
                if first <= batch_id <= last:
                    holding.append(path)
            elif path.rsplit("/", 1)[-1] == f"{batch_id:016d}.json":
                holding.insert(0, path)  # loose: read first
        for path in holding:
            try:
                held = self.entries_at(path)
            except FileNotFoundError:
                continue  # a loose object compacted since the listing
            entry = next((e for e in held if e["batch_id"] == batch_id), None)
            if entry is not None:
                return entry
        return None

    def entries(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Every journal entry (of one topic, or of all), oldest first."""
        prefix = f"{PREFIX}/{topic}" if topic is not None else PREFIX
        for _ in range(LISTINGS):
            found: dict[int, dict[str, Any]] = {}
            try:
                for path in self.store.list(prefix, ".json"):
                    for entry in self.entries_at(path):
                        found[entry["batch_id"]] = entry  # twice: the same done entry
                break
            except FileNotFoundError:
                continue  # compacted while listed: its segment is there now
        return sorted(found.values(), key=lambda e: e["batch_id"])

    def entries_at(self, path: str) -> list[dict[str, Any]]:
        """The entries an object holds (none if it is not the journal's; ``JournalDamaged``
        if it cannot be read: ``streaming/journal_objects.py``)."""
        if journal_segments.is_segment(path):
            return segment_entries(self.store, path)
        entry = self._done.get(path)
        if entry is None:
            try:
                entry = self._read(path)
            except NotAnEntry:
                return []
            if entry["state"] == "done":
                self._done[path] = entry
        self._paths[entry["batch_id"]] = path
        return [entry]

    def _unfinished(self, topic: str | None) -> tuple[dict[str, DoneFold], list[dict[str, Any]]]:
        """Per topic, what its ``done`` entries tell the per-batch questions (each read once in
        the process: a done entry never changes), and the entries not done, read now.

        A stream's journal grows by one entry a batch: reading every entry again for each
        question made a batch's planning and event-time step grow with the stream's age. A
        listing that contradicts what was folded (a loose entry gone, and no segment holding
        it) is taken again: a compaction was under way. If it still does, the topic's journal
        was made anew (a data directory made again in the same process): folded anew."""
        with _folds_lock:
            for attempt in range(1, LISTINGS + 1):
                if topic is None:
                    listed = self.store.list(PREFIX, ".json")
                else:  # the topic's folder: flat, loose entries and segments
                    listed = self.store.list_folder(f"{PREFIX}/{topic}", ".json")
                # Topics folded before are checked even when nothing of theirs is listed now.
                known = [name for uri, name in _folds if uri == self.store.uri]
                by_topic: dict[str, list[str]] = {
                    name: [] for name in ([topic] if topic is not None else known)
                }
                for path in listed:
                    by_topic.setdefault(path.split("/")[1], []).append(path)
                try:
                    return self._fold_listing(by_topic, last_try=attempt == LISTINGS)
                except _Contradiction:
                    continue
        raise AssertionError("the last listing is folded anew")  # pragma: no cover

    def _fold_listing(
        self, by_topic: dict[str, list[str]], last_try: bool
    ) -> tuple[dict[str, DoneFold], list[dict[str, Any]]]:
        folds, unfinished = {}, []
        for name, paths in by_topic.items():
            key = (self.store.uri, name)
            fold = _folds.setdefault(key, DoneFold())
            try:
                unfinished += self._fold_topic(fold, f"{PREFIX}/{name}", paths, strict=True)
            except _Contradiction:
                if not last_try:
                    raise
                fold = _folds[key] = DoneFold()
                unfinished += self._fold_topic(fold, f"{PREFIX}/{name}", paths, strict=False)
            folds[name] = fold
        return folds, sorted(unfinished, key=lambda e: e["batch_id"])

    def _fold_topic(
        self, fold: DoneFold, prefix: str, paths: list[str], strict: bool
    ) -> list[dict[str, Any]]:
        """Fold in the topic's new segments and loose done entries; its entries not done.
        ``strict``: raise ``_Contradiction`` where the listing contradicts the fold."""
        segments = {p for p in paths if journal_segments.is_segment(p)}
        loose = [p for p in paths if p not in segments]
        if strict and not fold.segments <= segments:
            raise _Contradiction  # segments are never deleted
        for path in sorted(segments - fold.segments):
            self._fold_segment(fold, prefix, path, strict)
        listed = set(loose)
        fold.compacted &= listed  # the loose copies of segments' entries, while still listed
        if strict and not fold.loose <= listed:
            raise _Contradiction
        unfinished = []
        for path in loose:
            if path in fold.loose or path in fold.compacted:
                continue
            try:
                entry = self._done.get(path) or self._read(path)
            except FileNotFoundError:
                if strict:
                    raise _Contradiction from None
                continue
            except NotAnEntry:
                continue
            self._paths[entry["batch_id"]] = path
            if entry["state"] == "done":
                fold.add(entry)
                fold.loose.add(path)
            else:
                unfinished.append(entry)
        return unfinished

    def _fold_segment(self, fold: DoneFold, prefix: str, path: str, strict: bool) -> None:
        """Fold a segment in from its header; its entries' loose objects are compacted."""
        try:
            header = segment_header(self.store, path)
        except FileNotFoundError:
            if strict:
                raise _Contradiction from None
            return
        fold.merge(header)
        for batch_id in header["batch_ids"]:
            compacted = f"{prefix}/{batch_id:016d}.json"
            fold.loose.discard(compacted)
            fold.compacted.add(compacted)
            if self._paths.get(batch_id) == compacted:
                del self._paths[batch_id]
        fold.segments.add(path)

    def _read(self, path: str) -> dict[str, Any]:
        return read_entry(self.store, path)

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
        return self.planned(topic)[0]

    def planned(self, topic: str) -> tuple[dict[int, int], set[str]]:
        """What the batches of ``topic`` planned, from one reading of the journal: per
        partition the end of the furthest range (``planned_ends``), and the ids of the topic
        (``KafkaSource.topic_id``) the plans were made on."""
        folds, unfinished = self._unfinished(topic)
        fold = folds.get(topic)
        ends, ids = (dict(fold.ends), set(fold.topic_ids)) if fold else ({}, set())
        for entry in unfinished:
            for partition, end in planned_ends(entry["plan"]):
                ends[partition] = max(ends.get(partition, 0), end)
            if isinstance(topic_id := entry["plan"].get("topic_id"), str):
                ids.add(topic_id)
        return ends, ids

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

    def totals(self) -> dict[str, int]:
        """Records read, published, quarantined, suppressed and held by every ``done`` batch
        (``with_suppressed``)."""
        return with_suppressed(counts(self.entries()))


class _Contradiction(Exception):
    """A listing shows neither a loose entry already folded in nor a segment holding it."""


# Per store (its uri): what this process folded of each topic's done entries, and where it saw
# each batch's object (a loose one's path; dropped once compacted).
_folds: dict[tuple[str, str], DoneFold] = {}  # (store, topic) -> its done entries, folded
_folds_lock = threading.Lock()
_located: dict[str, dict[int, str]] = {}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _encode(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, sort_keys=True) + "\n").encode()
