"""A worker's view of a data directory: the shared store, and its own local work directory.

The **store** (``sinks/storage.py``) is the data directory: a local folder or an S3 bucket
prefix, shared by every worker, written only with whole objects that are immutable or owned by
one worker (docs/pipeline.md, "Scale-out"). The **work directory** is the worker's own: its
catalog (``catalog.duckdb``: the files, checkpoints and quarantine it recorded, the natural-key
index of its shards), chunk receipts, and the files it lands before publishing them. A single
``rda run`` on a local data directory works in the data directory itself, which then looks as it
always did; a worker of a group gets ``<data>/work/<worker>`` unless ``--work-dir`` says
otherwise (on S3, ``--work-dir`` or a folder under ``RDA_STATE_DIR``).

Nothing here is locked across workers. The catalog is a DuckDB file (one writer at a time), so a
process holds its work directory's ``writer.lock`` while it has the catalog open: between two
processes using the *same* work directory (``rda run`` and ``rda quarantine replay``), never
between workers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.storage import Store, is_remote
from sinks.writer_lock import DEFAULT_WAIT_S, writer_lock
from streaming.journal import BatchJournal

if TYPE_CHECKING:
    from streaming.config import RunSettings

OLD_TABLES = ("batches", "batch_ranges")


@dataclass(frozen=True)
class Workspace:
    store: Store  # the data directory, shared
    work: DataLayout  # this worker's local directory

    @property
    def separate(self) -> bool:
        """Whether the work directory is not the data directory itself."""
        return self.store.local is None or self.store.local != self.work.root.absolute()


def workspace(data_dir: str | Path, work_dir: Path | None = None) -> Workspace:
    """The workspace of ``data_dir``; the work directory defaults to the data directory when it
    is local, else to a folder of ``RDA_STATE_DIR`` named after it."""
    store = Store.open(data_dir)
    if work_dir is None:
        if store.local is not None:
            work_dir = store.local
        else:
            from infra.state import state_dir

            work_dir = state_dir() / "work" / hashlib.sha256(store.uri.encode()).hexdigest()[:16]
    work = DataLayout(Path(work_dir).absolute())
    work.seal_private(make=False)  # made by the first writer (``streaming/keys.py``)
    if store.local is not None and Path(store.local).absolute() != work.root:
        DataLayout(Path(store.local)).seal_private(make=False)  # the data directory's: its keys
    return Workspace(store, work)


def run_workspace(settings: RunSettings, worker: str) -> Workspace:
    """The data directory's store and this worker's work directory: ``--work-dir``; else the
    data directory itself for a single local worker; else one of its own (see ``workspace``)."""
    work_dir = settings.work_dir
    if work_dir is None and (settings.join_group or is_remote(settings.data_dir)):
        name = worker.replace("/", "-")
        if is_remote(settings.data_dir):
            from infra.state import state_dir

            work_dir = state_dir() / "work" / name
        else:
            work_dir = DataLayout(Path(settings.data_dir)).work / name
    return workspace(settings.data_dir, work_dir)


def as_workspace(place: Workspace | DataLayout | str | Path) -> Workspace:
    if isinstance(place, Workspace):
        return place
    if isinstance(place, DataLayout):
        return workspace(place.root)
    return workspace(place)


@dataclass(frozen=True)
class RunStore:
    journal: BatchJournal
    catalog: Catalog
    space: Workspace

    @property
    def layout(self) -> DataLayout:
        """The work directory's layout (where the catalog, receipts and landed files are)."""
        return self.catalog.layout

    @property
    def store(self) -> Store:
        return self.space.store


@contextmanager
def writing(
    place: Workspace | DataLayout | str | Path, wait_s: float = DEFAULT_WAIT_S
) -> Iterator[RunStore]:
    """The journal, and the work directory's catalog opened for writing (closed on exit)."""
    space = as_workspace(place)
    with writer_lock(space.work, wait_s), Catalog(space.work) as catalog:
        journal = BatchJournal(space.store)
        _import_old_journal(catalog, space.work, journal)
        yield RunStore(journal, catalog, space)


@contextmanager
def journaling(
    place: Workspace | DataLayout | str | Path, wait_s: float = DEFAULT_WAIT_S
) -> Iterator[BatchJournal]:
    """The journal alone, under the same writer lock as ``writing``: for steps that do not touch
    the catalog (attaching it costs ~1.5-5 ms, several times a batch)."""
    space = as_workspace(place)
    with writer_lock(space.work, wait_s):
        if space.work.root.absolute() not in _imported:
            with Catalog(space.work) as catalog:
                _import_old_journal(catalog, space.work, BatchJournal(space.store))
        yield BatchJournal(space.store)


class HeldStore:
    """``writing`` held across the steps of one piece of work, let go and taken again in between
    when asked: the sequencer holds the catalog from a batch's duplicate check to its record (one
    opening), and lets it go while a node mines its anchor, so that readers of the catalog are
    not shut out for a block time. Let go on exit."""

    def __init__(self, place: Workspace | DataLayout | str | Path) -> None:
        self._place = place
        self._stack: ExitStack | None = None
        self._store: RunStore | None = None

    def open(self) -> RunStore:
        """The journal and the catalog, opened now unless already held."""
        if self._store is None:
            stack = ExitStack()
            self._store = stack.enter_context(writing(self._place))
            self._stack = stack
        return self._store

    def release(self) -> None:
        """Close the catalog and let the writer lock go (taken again by the next ``open``)."""
        stack, self._stack, self._store = self._stack, None, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> HeldStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_imported: set[Path] = set()  # work directories whose old journal this process has imported


def _import_old_journal(catalog: Catalog, layout: DataLayout, journal: BatchJournal) -> None:
    """Data directories of earlier versions kept the journal in DuckDB: ``journal.duckdb``, or
    before that tables of the catalog. Their batches become journal objects, once; the old file
    is kept renamed (``journal.duckdb.imported``), the old tables dropped. Checked once per work
    directory and process (under the writer lock, so no other process is importing it)."""
    root = layout.root.absolute()
    if root in _imported:
        return
    _import_from(catalog, layout, journal)
    _imported.add(root)


def _import_from(catalog: Catalog, layout: DataLayout, journal: BatchJournal) -> None:
    old_file = layout.root / "journal.duckdb"
    if set(OLD_TABLES) <= catalog.tables_at_open:
        _import_rows(catalog.db, journal)
        for table in OLD_TABLES:
            catalog.db.execute(f"DROP TABLE {table}")
    if old_file.is_file():
        with duckdb.connect(str(old_file), read_only=True) as db:
            _import_rows(db, journal)
        os.replace(old_file, old_file.with_name("journal.duckdb.imported"))


def _import_rows(db: duckdb.DuckDBPyConnection, journal: BatchJournal) -> None:
    cursor = db.execute("SELECT * FROM batches ORDER BY batch_id")
    names = [d[0] for d in cursor.description]
    have = {e["batch_id"] for e in journal.entries()}
    for row in cursor.fetchall():
        old = dict(zip(names, row, strict=True))
        if old["batch_id"] in have:
            continue
        journal.record_plan(
            old["batch_id"], old["topic"], json.loads(old["plan"]), old.get("owner")
        )
        counted = ("records_read", "records_published", "records_quarantined", "records_held")
        counts = {k: old[k] for k in counted if k in old}
        journal.set_state(old["batch_id"], old["state"], **counts)
