"""The batch journal's own file, and data directories whose journal lived in the catalog."""

from __future__ import annotations

import duckdb

from sinks.layout import DataLayout
from streaming.journal import BatchJournal
from streaming.store import writing

# What versions before the journal had its own file left in catalog.duckdb.
OLD_CATALOG = """
CREATE TABLE batches (
    batch_id BIGINT PRIMARY KEY, topic VARCHAR, state VARCHAR, plan JSON,
    records_read BIGINT, records_published BIGINT, records_quarantined BIGINT,
    created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now(), owner VARCHAR);
CREATE TABLE batch_ranges (
    batch_id BIGINT, topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT,
    end_offset BIGINT, PRIMARY KEY (batch_id, kafka_partition));
INSERT INTO batches (batch_id, topic, state, plan, records_read, owner) VALUES
    (1, 't', 'done', '{"ranges": [{"partition": 0, "start": 0, "end": 40}]}', 40, 'w1'),
    (2, 't', 'planned', '{"ranges": [{"partition": 1, "start": 0, "end": 25}]}', NULL, 'w2');
INSERT INTO batch_ranges VALUES (1, 't', 0, 0, 40), (2, 't', 1, 0, 25);
"""


def test_the_journal_is_one_object_per_batch_in_the_data_directory(tmp_path):
    layout = DataLayout(tmp_path / "data")
    with writing(layout) as store:
        store.journal.record_plan(1, "t", {"ranges": [{"partition": 0, "start": 0, "end": 9}]})
        tables = store.catalog.db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert "batches" not in {name for (name,) in tables}
    assert (layout.journal / "t" / "0000000000000001.json").is_file()
    with BatchJournal(layout.journal, read_only=True) as journal:  # another reader, elsewhere
        assert journal.batch(1)["state"] == "planned"


def test_an_old_catalogs_journal_is_imported_once_and_whole(tmp_path):
    layout = DataLayout(tmp_path / "data")
    layout.root.mkdir(parents=True)
    old = duckdb.connect(str(layout.catalog))
    old.execute(OLD_CATALOG)
    old.close()
    with writing(layout) as store:
        assert [b["batch_id"] for b in store.journal.unfinished_batches("t")] == [2]
        assert store.journal.journal_ends("t") == {0: 40, 1: 25}
        assert store.journal.batch(1)["owner"] == "w1"
        tables = store.catalog.db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        assert not {"batches", "batch_ranges"} & {name for (name,) in tables}
    with writing(layout) as store:  # a second open finds the journal where it is now
        assert len(store.journal.entries()) == 2
        assert store.journal.next_batch_id() > 2


def test_an_old_journal_file_is_imported_and_kept_beside(tmp_path):
    layout = DataLayout(tmp_path / "data")
    layout.root.mkdir(parents=True)
    old = duckdb.connect(str(layout.root / "journal.duckdb"))
    old.execute(OLD_CATALOG)
    old.close()
    with writing(layout) as store:
        assert store.journal.totals() == {
            "read": 40,
            "published": 0,
            "quarantined": 0,
            "suppressed": 40,
            "held": 0,
        }
    assert (layout.root / "journal.duckdb.imported").is_file()
    assert not (layout.root / "journal.duckdb").exists()
