"""What the runtime writes under the writer lock: the batch journal and the buyers' catalog."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.writer_lock import DEFAULT_WAIT_S, writer_lock
from streaming.journal import TABLES, BatchJournal


@dataclass(frozen=True)
class RunStore:
    journal: BatchJournal
    catalog: Catalog

    @property
    def layout(self) -> DataLayout:
        return self.catalog.layout


@contextmanager
def writing(layout: DataLayout, wait_s: float = DEFAULT_WAIT_S) -> Iterator[RunStore]:
    """Journal and catalog, opened for writing while holding the writer lock (closed before)."""
    with writer_lock(layout, wait_s), Catalog(layout) as catalog:
        _move_old_journal(catalog, layout)
        with BatchJournal(layout.journal) as journal:
            yield RunStore(journal, catalog)


def _move_old_journal(catalog: Catalog, layout: DataLayout) -> None:
    """Data directories of versions that kept the journal in the catalog: move it out, once.

    The copy is made under another name and renamed into place, so a crash half-way leaves
    either no journal file (the move is redone) or a whole one (only the old tables are left).
    """
    tables = catalog.db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    if not set(TABLES) <= {name for (name,) in tables}:
        return
    if not layout.journal.exists():
        partial = layout.journal.with_name(layout.journal.name + ".partial")
        partial.unlink(missing_ok=True)
        BatchJournal(partial).close()  # the journal's tables, empty
        target = str(partial).replace("'", "''")
        catalog.db.execute(f"ATTACH '{target}' AS moved_journal")
        try:
            for table in TABLES:
                catalog.db.execute(
                    f"INSERT INTO moved_journal.{table} BY NAME SELECT * FROM {table}"
                )
            catalog.db.execute("CHECKPOINT moved_journal")
        finally:
            catalog.db.execute("DETACH moved_journal")
        os.replace(partial, layout.journal)
    for table in TABLES:
        catalog.db.execute(f"DROP TABLE {table}")
