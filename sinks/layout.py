"""Where everything lands under a data directory.

``published/`` is what buyers and auditors may see. ``private/`` is never published: it holds
the quarantine (raw bytes of rejected records), the sessions held and withheld (raw subscriber
identifiers), the keys, and the pipeline's own receipts. It is its owner's alone (0700):
whatever the umask gives the files inside, no other local user reaches them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_MODE = 0o700
log = logging.getLogger("rda.layout")
_sealed: set[Path] = set()  # private folders this process has made its owner's alone


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def journal(self) -> Path:
        """The runtime's batch journal (``streaming/journal.py``): one object per batch."""
        return self.root / "journal"

    @property
    def writer_lock(self) -> Path:
        """Held while a process writes this directory's catalog (DuckDB has one writer)."""
        return self.root / "writer.lock"

    @property
    def work(self) -> Path:
        """Where the ``rda run`` workers of a shared data directory keep their local state."""
        return self.root / "work"

    @property
    def workers(self) -> Path:
        """Heartbeat files of the ``rda run`` workers on this directory."""
        return self.root / "workers"

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def private(self) -> Path:
        return self.root / "private"

    def seal_private(self, make: bool = True) -> Path:
        """``private/``, its owner's alone (0700): made now if missing (unless ``make`` is
        False: then only one already there is closed, if an earlier version or a loose umask
        left it open)."""
        folder = self.private.absolute()
        if folder in _sealed:
            return folder
        if make:
            folder.mkdir(mode=PRIVATE_MODE, parents=True, exist_ok=True)
        elif not folder.is_dir():
            return folder
        if stat.S_IMODE(folder.stat().st_mode) & 0o077:
            try:
                os.chmod(folder, PRIVATE_MODE)
            except OSError as error:  # another user's, or a read-only mount: said, not fatal
                log.warning("%s is open to other users and cannot be closed: %s", folder, error)
        _sealed.add(folder)
        return folder

    def private_cache(self, *parts: str) -> Path:
        """A cache's folder under ``private/``, sealed first when it can be: a data directory
        that cannot be written is still read (its cache's user reads as published then)."""
        with contextlib.suppress(OSError):
            self.seal_private()
        return self.private.joinpath(*parts)

    def dataset_dir(self, dataset: str) -> Path:
        return self.published / dataset

    def shard_dir(self, dataset: str, topic: str, partition: int) -> Path:
        """A shard's folder: the files and checkpoints of one partition's rows of a dataset."""
        return self.dataset_dir(dataset) / "shards" / f"{topic}.p{partition}"

    def data_file(
        self, dataset: str, chunk_name: str, topic: str | None = None, partition: int = 0
    ) -> Path:
        """A chunk's published rows: in its shard's folder (a dataset's own folder without a
        topic, as unsharded data directories had them)."""
        if topic is None:
            return self.dataset_dir(dataset) / "data" / f"{chunk_name}.parquet"
        return self.shard_dir(dataset, topic, partition) / "data" / f"{chunk_name}.parquet"

    def quarantine_file(self, topic: str, chunk_name: str) -> Path:
        return self.private / "quarantine" / topic / f"{chunk_name}.parquet"

    def suppressed_file(self, topic: str, chunk_name: str) -> Path:
        """Records withheld for k-anonymity: kept whole, privately, and counted."""
        return self.private / "suppressed" / topic / f"{chunk_name}.parquet"

    def staging_file(self, dataset: str, chunk_name: str) -> Path:
        """A chunk's staged rows: checked and transformed, awaiting the event-time step."""
        return self.private / "staging" / dataset / f"{chunk_name}.parquet"

    def state_dir(self, topic: str, partition: int) -> Path:
        """A partition's event-time state: watermark, held rows, the DP ledger (private)."""
        return self.private / "state" / topic / f"p{partition}"

    def quality_dir(self, dataset: str) -> Path:
        """Great Expectations results and Data Docs, published beside the data."""
        return self.dataset_dir(dataset) / "quality"

    def receipt_file(self, chunk_name: str) -> Path:
        return self.private / "receipts" / f"{chunk_name}.json"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def in_dataset(self, dataset: str, path: str) -> str:
        """A path relative to the data (or work) directory, as the dataset folder names it."""
        return (self.root / path).relative_to(self.dataset_dir(dataset)).as_posix()
