"""``sinks/sql.py``: ``replace_rows`` leaves a table as DuckDB's ``INSERT OR REPLACE`` would,
few rows (looked up, then inserted) or many (DuckDB's upsert)."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.catalog import Catalog
from sinks.layout import DataLayout
from sinks.sql import LOOKED_UP_ROWS, insert_rows, replace_rows, transaction

_TABLE = "CREATE OR REPLACE TABLE t (a VARCHAR, b BIGINT, v VARCHAR, PRIMARY KEY (a, b))"
_DB = duckdb.connect()  # in memory, shared by the examples: a database costs ~15 ms to make
_KEYS = st.tuples(st.sampled_from(["x", "y", "it's"]), st.integers(-9, 9))


def _rows(draw_keys: list[tuple[str, int]], tag: str) -> list[list[object]]:
    unique = dict.fromkeys(draw_keys)  # each key once, as the callers give them
    return [[a, b, f"{tag}{i}"] for i, (a, b) in enumerate(unique)]


@settings(max_examples=25)
@given(st.lists(_KEYS, max_size=12), st.lists(_KEYS, min_size=1, max_size=2 * LOOKED_UP_ROWS))
def test_replacing_rows_leaves_the_table_as_insert_or_replace_does(before, after):
    old, new = _rows(before, "old"), _rows(after, "new")
    tables = []
    for replace in (True, False):
        _DB.execute(_TABLE)
        insert_rows(_DB, "INSERT INTO t", old)
        with transaction(_DB):
            if replace:
                replace_rows(_DB, "t", ["a", "b"], new)
            else:
                insert_rows(_DB, "INSERT OR REPLACE INTO t", new)
        tables.append(_DB.execute("SELECT * FROM t ORDER BY a, b").fetchall())
    assert tables[0] == tables[1]


def test_a_file_registered_again_by_a_redo_replaces_its_row(tmp_path):
    entry = {"path": "published/a.v1/f.parquet", "dataset": "a.v1", "sha256": "00" * 32,
             "rows": 3, "leaf_start": 0, "topic": "t", "partition": 0, "start": 0,
             "end": 3}  # fmt: skip
    with Catalog(DataLayout(tmp_path)) as catalog:
        catalog.register_files(4, [entry])
        catalog.register_files(5, [{**entry, "sha256": "11" * 32}])  # redone by batch 5
        listed = catalog.dataset_files("a.v1")
    assert [(f["sha256"], f["batch_id"]) for f in listed] == [("11" * 32, 5)]
