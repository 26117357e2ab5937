"""DuckDB files opened by attaching them to one in-memory database per process.

Creating a DuckDB database costs ~15-18 ms here (its catalog of built-in functions), and the
runtime opens its catalog file once a batch; attaching the file to a database that is already
up costs ~1.5 ms. Detaching it checkpoints the file and lets its lock go as closing did, so
readers in other processes are shut out no longer than before. Several openings of one file in
the process share one attachment (as ``duckdb.connect`` shares one database per file).

The host runs no thread of its own (``threads = 1``), attached or not: a catalog's statements
are a batch's (its keys, files and checkpoints), too small to gain from a second thread, and the
runtime runs them beside its landing child, which has the other core. Measured on 2 cores, 8
batches of 12,740 records: ~25 ms a batch less with one thread than with two; one batch of
101,920 records: the same. A fork of the driver inherits no DuckDB thread either; a forked child
starts without the parent's host (it makes its own if it opens a file).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb

from sinks.sql import sql_string

_lock = threading.Lock()
_host: duckdb.DuckDBPyConnection | None = None
_attached: dict[Path, tuple[str, int]] = {}  # file -> (alias, openings)
_next_alias = 0


def attach(path: Path) -> duckdb.DuckDBPyConnection:
    """A new connection whose default database is ``path`` (created if missing), attached now
    unless already; give it back with ``detach``."""
    global _host, _next_alias
    key = path.absolute()
    with _lock:
        if _host is None:
            _host = duckdb.connect(config={"threads": 1})
        alias, openings = _attached.get(key, ("", 0))
        if not openings:
            _next_alias += 1
            alias = f"rda_file_{_next_alias}"
            _host.execute(f"ATTACH {sql_string(str(key))} AS {alias}")
        _attached[key] = (alias, openings + 1)
        connection = _host.cursor()
    connection.execute(f"USE {alias}")
    return connection


def detach(path: Path) -> None:
    """One opening of ``path`` given back; the last one detaches the file. (An opening made
    by the parent of a forked child is not the child's to give back: a no-op there.)"""
    key = path.absolute()
    with _lock:
        if key not in _attached:
            return
        alias, openings = _attached[key]
        if openings > 1:
            _attached[key] = (alias, openings - 1)
            return
        assert _host is not None
        _host.execute(f"DETACH {alias}")  # refused while a connection still uses it: kept then
        del _attached[key]


_inherited: list[duckdb.DuckDBPyConnection] = []


def _forget_in_child() -> None:
    global _host, _lock
    if _host is not None:  # the parent's, never used here, nor freed: closing it would touch
        _inherited.append(_host)  # the threads and files of a database the child does not own
    _host, _lock = None, threading.Lock()
    _attached.clear()


os.register_at_fork(after_in_child=_forget_in_child)
