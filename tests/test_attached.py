"""Catalog files opened by attaching them to the process's DuckDB: closed, a file is another
process's to open; open twice, it is attached once; a forked child opens its own."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import duckdb
import pytest

from sinks import attached
from sinks.catalog import Catalog
from sinks.layout import DataLayout

READ_ELSEWHERE = (
    "import duckdb, sys; db = duckdb.connect(sys.argv[1], read_only=True); "
    "print(db.execute('SELECT count(*) FROM files').fetchone()[0])"
)


def _register_one(catalog: Catalog, name: str) -> None:
    catalog.register_files(
        1,
        [{"path": name, "dataset": "d", "sha256": "0" * 64, "rows": 1, "leaf_start": 0,
          "topic": "t", "partition": 0, "start": 0, "end": 1}],
    )  # fmt: skip


def test_a_closed_catalog_is_checkpointed_and_open_to_other_processes(tmp_path):
    layout = DataLayout(tmp_path)
    with Catalog(layout) as catalog:
        _register_one(catalog, "a.parquet")
    assert not layout.catalog.with_name(layout.catalog.name + ".wal").exists()
    read = [sys.executable, "-c", READ_ELSEWHERE, str(layout.catalog)]
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout == "1\n"


def test_two_openings_of_a_file_share_it_until_the_last_is_closed(tmp_path):
    layout = DataLayout(tmp_path)
    first, second = Catalog(layout), Catalog(layout)
    _register_one(first, "a.parquet")
    assert second.db.execute("SELECT count(*) FROM files").fetchone() == (1,)
    first.close()
    first.close()  # a second close is a no-op
    assert second.db.execute("SELECT count(*) FROM files").fetchone() == (1,)
    second.close()
    assert attached._attached == {}


def test_catalogs_of_two_data_directories_see_their_own_tables(tmp_path):
    one, two = Catalog(DataLayout(tmp_path / "one")), Catalog(DataLayout(tmp_path / "two"))
    one.db.execute("CREATE TABLE only_in_one (x INTEGER)")
    with Catalog(DataLayout(tmp_path / "two")) as again:
        assert "only_in_one" not in again.tables_at_open
    _register_one(one, "a.parquet")
    assert two.cursor().execute("SELECT count(*) FROM files").fetchone() == (0,)
    one.close()
    two.close()


def test_the_process_runs_no_duckdb_thread_with_a_catalog_open_or_not(tmp_path):
    with Catalog(DataLayout(tmp_path)) as catalog:
        assert catalog.db.execute("SELECT current_setting('threads')").fetchone() == (1,)
    assert attached._host is not None
    assert attached._host.execute("SELECT current_setting('threads')").fetchone() == (1,)


def test_a_forked_child_opens_a_catalog_of_its_own(tmp_path):
    parent = Catalog(DataLayout(tmp_path / "parent"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            with Catalog(DataLayout(tmp_path / "child")) as catalog:
                _register_one(catalog, "c.parquet")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _register_one(parent, "p.parquet")
    parent.close()
    with Catalog(DataLayout(tmp_path / "child")) as child:
        assert child.db.execute("SELECT path FROM files").fetchall() == [("c.parquet",)]


def test_a_catalog_collected_unclosed_lets_its_file_go(tmp_path):
    layout = DataLayout(tmp_path)
    catalog = Catalog(layout)
    _register_one(catalog, "a.parquet")
    del catalog
    gc.collect()  # its quarantine register refers back to it
    assert attached._attached == {}
    read = [sys.executable, "-c", READ_ELSEWHERE, str(layout.catalog)]
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout == "1\n"


def test_a_file_that_is_not_a_catalog_is_refused_and_leaves_nothing_attached(tmp_path):
    layout = DataLayout(tmp_path / "bad")
    layout.root.mkdir()
    layout.catalog.write_bytes(b"not a duckdb file" * 512)
    with pytest.raises(duckdb.Error):
        Catalog(layout)
    assert attached._attached == {}
    assert attached._host.execute("SELECT current_setting('threads')").fetchone() == (1,)
    with Catalog(DataLayout(tmp_path / "good")) as good:  # the next opening is unaffected
        _register_one(good, "a.parquet")
