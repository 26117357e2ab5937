"""Compacted copies of a dataset's small published files, for buyers' queries.

A stream at a 1 s trigger publishes a file per dataset and shard every second, and a query opens
every file of the dataset: DuckDB reads each file's footer and column chunks, ~0.17 ms a file
(`rda bench --only aging`: a count over 1,967 files took 325 ms, over the same rows in one file
3 ms; a day at a 1 s trigger adds ~86,400 files a shard). The market therefore reads runs of
consecutive files of a shard's log from one compacted file holding their rows in order, with
each row's log (``_rda_log``) and leaf in that log (``_rda_log_leaf``): fixed once published, as
a log only grows, so a view numbers the rows of every copy from one offset per log (the leaves
of the shards before it), however many files the copies hold.

Runs are aligned in a log's file order, which only grows: a first-level run is ``RUN_FILES``
files, a run of the next level ``RUN_FILES`` runs of the level below, built from their
compacted files. A compacted file is derived data, never published nor anchored, kept under
``private/market/compacted/<dataset>/``: it is made only from files whose bytes hash to the
SHA-256 their manifest states, named by the hash of its members (their logs, leaves, paths and
SHA-256), written whole then renamed (workers of ``rda serve`` making the same run write the
same content), and read only for a checkpoint that lists every one of its members. A view
compacts at most ``MAX_FILES_PER_VIEW`` files it has not compacted before; the rest stay loose
until a later view. A compacted file is touched by every view that reads it, and removed once
none has for ``UNUSED_S`` (the runs of a level are replaced by the run above them as a log
grows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sinks.parquet import read_parquet

log = logging.getLogger("rda.market")
LOG_COLUMN = "_rda_log"
LOG_LEAF_COLUMN = "_rda_log_leaf"
RUN_FILES = 16
MAX_FILES_PER_VIEW = 256  # ~0.6 s of copying at most before a view is made (~2.2 ms a file)
# A compacted file no view has used for this long is removed (the runs above it hold its rows):
# longer than a view is kept (``market/sandbox.py``), so no view still reads it.
UNUSED_S = 3600.0
# Runs of larger files stay as they are (split into the runs below): a file this size costs a
# query little beside its rows, and a copy would only double it on disk.
MAX_RUN_BYTES = 256 << 20


class Member(NamedTuple):
    """A published file as a checkpoint lists it."""

    path: Path  # absolute
    key: str  # its path in the dataset folder
    sha256: str
    leaf_start: int  # its first row's leaf in the checkpoint
    log: str = ""  # the log its rows are leaves of (a shard)
    log_leaf: int = 0  # its first row's leaf in that log


@dataclass
class Parts:
    """What a view reads: compacted files with the members each holds, and loose files."""

    compacted: list[tuple[Path, list[Member]]] = field(default_factory=list)
    loose: list[Member] = field(default_factory=list)
    pending: bool = False  # runs left loose for want of budget: a later view compacts more


def view_parts(cache: Path, logs: list[list[Member]], budget: int | None = None) -> Parts:
    """The parts a view of the files of ``logs`` (each log's files in leaf order) reads, making
    the compacted files it lacks while ``budget`` (files read; ``MAX_FILES_PER_VIEW``) lasts."""
    parts, left = Parts(), _Budget(MAX_FILES_PER_VIEW if budget is None else budget)
    if not _writable(cache):  # e.g. a data directory mounted read-only: read as published
        left = _Budget(0)
    for files in logs:
        start = 0
        while start < len(files):
            size = _largest_run(len(files) - start)
            if size == 0:
                parts.loose += files[start:]
                break
            _cover(cache, files[start : start + size], parts, left)
            start += size
    parts.pending = left.short
    _collect(cache, {path for path, _ in parts.compacted})
    return parts


def _writable(cache: Path) -> bool:
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(cache, os.W_OK)


def _collect(cache: Path, used: set[Path]) -> None:
    """Remove the compacted files (and partial writes) no view has used for ``UNUSED_S``."""
    now = time.time()
    for path in cache.glob("*.parquet*") if cache.is_dir() else ():
        try:
            if path not in used and now - path.stat().st_mtime > UNUSED_S:
                path.unlink()
        except FileNotFoundError:  # another process's collection
            continue


@dataclass
class _Budget:
    """Files a view may still read to make compacted ones (its members' files, or the runs a
    run of a level above is made from)."""

    files: int
    short: bool = False  # a run was left for want of it

    def affords(self, files: int) -> bool:
        if files > self.files:
            self.short = True
            return False
        return True

    def spend(self, files: int) -> None:
        self.files -= files


def _largest_run(available: int) -> int:
    size = 0
    while (size or 1) * RUN_FILES <= available:
        size = (size or 1) * RUN_FILES
    return size


def _cover(cache: Path, members: list[Member], parts: Parts, left: _Budget) -> None:
    """``members`` (a whole run) as one compacted file, else as the runs of the level below."""
    made = _compacted(cache, members, left)
    if made is not None:
        parts.compacted.append((made, members))
    elif len(members) == RUN_FILES:
        parts.loose += members
    else:
        step = len(members) // RUN_FILES
        for first in range(0, len(members), step):
            _cover(cache, members[first : first + step], parts, left)


def _compacted(cache: Path, members: list[Member], budget: _Budget) -> Path | None:
    """The run's compacted file: found (and marked used now), or made now; None when it cannot
    be made now (see ``_make``; a file gone or unreadable, a full disk: read as published)."""
    target = cache / f"{_run_name(members)}.parquet"
    try:
        os.utime(target)  # used now: kept for UNUSED_S at least
        return target
    except OSError:  # not made yet (or no cache folder at all)
        pass
    try:
        return _make(cache, target, members, budget)
    except (OSError, pa.ArrowException) as error:
        log.warning("a run of %d files from %s is read as published: %s",
                    len(members), members[0].key, error)  # fmt: skip
        return None


def _make(cache: Path, target: Path, members: list[Member], budget: _Budget) -> Path | None:
    """Make the run's compacted file from its members' files (first level) or from the
    compacted files of its runs (above); None when the budget is spent, the run's files are
    large, or a member's bytes are not the ones its manifest states."""
    if len(members) == RUN_FILES:
        if not budget.affords(len(members)):  # first: a view past its budget stats nothing
            return None
        if sum(m.path.stat().st_size for m in members) > MAX_RUN_BYTES:
            return None
        budget.spend(len(members))
        tables = [_member_rows(m) for m in members]
        if any(t is None for t in tables):
            return None
        rows = pa.concat_tables(tables, promote_options="default")  # one row group: small files
        return _write(target, [rows.schema], [rows])
    step = len(members) // RUN_FILES
    runs = [_compacted(cache, members[i : i + step], budget) for i in range(0, len(members), step)]
    if any(run is None for run in runs) or not budget.affords(len(runs)):
        return None
    if sum(run.stat().st_size for run in runs) > MAX_RUN_BYTES:  # type: ignore[union-attr]
        return None
    budget.spend(len(runs))
    schemas = [pq.read_schema(run) for run in runs]  # type: ignore[arg-type]
    return _write(target, schemas, (read_parquet(run) for run in runs))  # type: ignore[arg-type]


def _run_name(members: list[Member]) -> str:
    listed: Any = [[m.log, m.log_leaf, m.key, m.sha256] for m in members]
    listed = json.dumps(listed, separators=(",", ":"))
    return hashlib.sha256(listed.encode()).hexdigest()


def _member_rows(member: Member) -> pa.Table | None:
    """The file's rows with their log and leaf columns; None if its bytes are not the ones
    its manifest states (changed since: never copied into a compacted file)."""
    data = member.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != member.sha256:
        return None
    with pq.ParquetFile(pa.BufferReader(data)) as file:  # not read_table: its dataset layer
        rows = file.read()  # costs as much as the read for a small file
    logs = pa.repeat(pa.scalar(member.log, pa.string()), rows.num_rows)
    leaves = np.arange(member.log_leaf, member.log_leaf + rows.num_rows, dtype=np.int64)
    return rows.append_column(LOG_COLUMN, logs).append_column(LOG_LEAF_COLUMN, pa.array(leaves))


def _write(target: Path, schemas: list[pa.Schema], tables: Iterable[pa.Table]) -> Path:
    """The tables' rows, in order, in one file, a table at a time (columns by name: a later
    minor version's files add optional columns, null in the rows of earlier ones)."""
    schema = pa.unify_schemas(schemas)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
    try:
        with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
            for table in tables:
                writer.write_table(_conformed(table, schema))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
