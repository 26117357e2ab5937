"""The batch journal's own file, and data directories whose journal lived in the catalog."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from journal_rounds import journal_round, rounds

import streaming.journal_objects as journal_objects
from sinks.layout import DataLayout
from sinks.storage import Store
from streaming.errors import JournalDamaged
from streaming.journal import BatchJournal
from streaming.retry import failure_kind, is_transient
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


# -- the per-batch questions, answered from done entries read once ------------------------------


def _reference(entries: list[dict], partition: int) -> tuple[int | None, set[int], int]:
    """What a scan of every entry says (the journal's answers before done entries were kept):
    the state head, the bases of unfinished batches and the furthest planned end."""
    head, newest, bases, end = None, 0, set(), 0
    for entry in entries:
        info = (entry["plan"].get("state") or {}).get(str(partition))
        if entry["state"] != "planned" and info and info["position"] > newest:
            head, newest = entry["batch_id"], info["position"]
        if entry["state"] not in ("planned", "done") and info and info["base"] is not None:
            bases.add(info["base"])
        for r in entry["plan"].get("ranges", []):
            if r["partition"] == partition:
                end = max(end, r["end"])
    return head, bases, end


@settings(max_examples=25, deadline=None)
@given(rounds, rounds)
def test_the_journals_answers_are_those_of_a_scan_of_every_entry(first, later):
    with tempfile.TemporaryDirectory() as folder:
        journal = BatchJournal(Path(folder))
        for number, rows in enumerate((first, later)):
            journal_round(journal, number, rows)
            if number == 1 and first:  # a batch of the first round finishes meanwhile
                journal.set_state(1, "done")
            fresh = BatchJournal(Path(folder))  # another reader, as a later batch opens it
            entries = fresh.entries("t")
            for partition in range(3):
                head, bases, end = _reference(entries, partition)
                view = fresh.state_view("t")
                assert view.latest(partition)[0] == journal.state_head("t", partition) == head
                assert view.bases(partition) == journal.state_view("t").bases(partition) == bases
                assert fresh.journal_ends("t").get(partition, 0) == end
            unfinished = [e for e in entries if e["state"] != "done"]
            assert fresh.unfinished_batches("t") == fresh.unfinished_batches() == unfinished


def test_a_done_entry_is_read_once_by_the_process_whichever_journal_asks(tmp_path, monkeypatch):
    journal = BatchJournal(tmp_path)
    for batch_id in range(1, 6):
        journal.record_plan(batch_id, "t", {"ranges": [{"partition": 0, "start": 0, "end": 9}]})
        journal.set_state(batch_id, "done")
    journal.record_plan(6, "t", {"ranges": [{"partition": 0, "start": 9, "end": 12}]})
    reads = []
    real = BatchJournal._read
    monkeypatch.setattr(BatchJournal, "_read", lambda self, p: reads.append(p) or real(self, p))
    for _ in range(3):  # three batches, each with its own journal object
        assert BatchJournal(tmp_path).journal_ends("t") == {0: 12}
    assert reads.count("journal/t/0000000000000001.json") == 1
    assert reads.count("journal/t/0000000000000006.json") == 3  # not done: read each time


def test_a_journal_whose_entries_are_gone_answers_from_what_is_there_now(tmp_path):
    journal = BatchJournal(tmp_path)
    plan = {
        "ranges": [{"partition": 0, "start": 0, "end": 9}],
        "state": {"0": {"base": None, "position": 1}},
    }
    journal.record_plan(1, "t", plan)
    journal.set_state(1, "done")
    assert journal.state_head("t", 0) == 1
    shutil.rmtree(tmp_path / "journal")  # the data directory made anew, in the same process
    journal = BatchJournal(tmp_path)
    journal.record_plan(7, "t", {"ranges": [{"partition": 0, "start": 0, "end": 3}]})
    assert (journal.state_head("t", 0), journal.journal_ends("t")) == (None, {0: 3})


def test_a_folder_is_listed_as_the_recursive_listing_lists_its_own_objects(tmp_path):
    store = Store.open(tmp_path)
    for name in ("b.json", "a.json", "c.json.partial-12", "d.txt", "sub/e.json"):
        store.write_bytes(f"journal/t/{name}", b"{}")
    (tmp_path / "journal" / "t" / "f.partial.json").write_bytes(b"{}")  # a name being written
    direct = [p for p in store.list("journal/t", ".json") if p.count("/") == 2]
    assert (
        store.list_folder("journal/t", ".json")
        == direct
        == ["journal/t/a.json", "journal/t/b.json"]
    )
    assert store.list_folder("journal/none", ".json") == []


# -- objects that cannot be read ----------------------------------------------------------------

PLANNED = {"ranges": [{"partition": 0, "start": 0, "end": 9}]}
ENTRY = "journal/t/0000000000000001.json"


def test_a_loose_entry_read_while_it_is_rewritten_is_read_again(tmp_path, monkeypatch):
    """On a store whose PUT is not atomic (an S3-compatible server such as s3rver), a reader
    can get the first part of an entry its owner is rewriting: it reads it again, and answers
    with the batch rather than as if it were not there."""
    BatchJournal(tmp_path).record_plan(1, "t", PLANNED)
    real = Store.read_bytes
    torn_reads_left = {ENTRY: 2}

    def read_bytes(self: Store, relative: str) -> bytes:
        data = real(self, relative)
        if torn_reads_left.get(relative):
            torn_reads_left[relative] -= 1
            return data[: len(data) // 2]
        return data

    monkeypatch.setattr(Store, "read_bytes", read_bytes)
    monkeypatch.setattr(journal_objects, "TORN_WAIT_S", 0.0)
    reader = BatchJournal(tmp_path, read_only=True)
    assert reader.journal_ends("t") == {0: 9}
    assert [e["batch_id"] for e in reader.unfinished_batches("t")] == [1]
    assert torn_reads_left == {ENTRY: 0}


def test_a_loose_entry_that_never_parses_stops_the_questions_and_names_it(tmp_path, monkeypatch):
    BatchJournal(tmp_path).record_plan(1, "t", PLANNED)
    (tmp_path / ENTRY).write_bytes(b'{"batch_id": 1, "topic": "t", "sta')
    monkeypatch.setattr(journal_objects, "TORN_WAIT_S", 0.0)
    with pytest.raises(JournalDamaged, match=ENTRY) as raised:
        BatchJournal(tmp_path).journal_ends("t")  # not {}: its range would be planned again
    with pytest.raises(JournalDamaged, match=ENTRY):
        BatchJournal(tmp_path).entries("t")
    # The CLI's one line: the data directory's fault (exit 3), not retried by the run.
    assert failure_kind(raised.value) == "disk"
    assert not is_transient(raised.value)


def test_a_json_object_that_is_not_an_entry_is_left_alone(tmp_path):
    journal = BatchJournal(tmp_path)
    journal.record_plan(1, "t", PLANNED)
    (tmp_path / "journal" / "t" / "notes.json").write_bytes(b'{"written by": "an operator"}')
    fresh = BatchJournal(tmp_path)
    assert [e["batch_id"] for e in fresh.entries("t")] == [1]
    assert fresh.journal_ends("t") == {0: 9}
