"""A long stream's journal: done entries compacted into segments, the answers unchanged."""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journal_rounds import journal_round, rounds

import streaming.journal as journal_module
from sinks.storage import Store
from streaming import journal_segments
from streaming.errors import JournalDamaged
from streaming.journal import BatchJournal
from streaming.journal_fold import DoneFold
from streaming.journal_report import journal_report


@contextmanager
def a_new_process():
    """What a process starting on the data directory knows of its journal: nothing."""
    with (
        mock.patch.dict(journal_module._folds, clear=True),
        mock.patch.dict(journal_module._located, clear=True),
    ):
        yield


TOPIC_ID = "01a24ba2-07ec-7c40-b18e-4e6db8eebb00"


def plan_of(batch_id: int, partition: int = 0) -> dict:
    return {
        "ranges": [{"partition": partition, "start": batch_id * 10 - 10, "end": batch_id * 10}],
        "state": {str(partition): {"base": batch_id - 1 or None, "position": batch_id}},
        "topic_id": TOPIC_ID,
    }


def done(journal: BatchJournal, batch_ids, partition: int = 0) -> None:
    for batch_id in batch_ids:
        journal.record_plan(batch_id, "t", plan_of(batch_id, partition))
        journal.set_state(batch_id, "done", records_read=10, records_published=10)


def answers(journal: BatchJournal) -> tuple:
    """Every question the journal is asked, a batch's and ``rda status``'s."""
    view = journal.state_view("t")
    return (
        journal.journal_ends("t"),
        [view.latest(p) for p in range(3)],
        [view.bases(p) for p in range(3)],
        journal.unfinished_batches("t"),
        journal.unfinished_batches(),
        journal.entries("t"),
        journal.totals(),
        journal.planned("t"),
    )


def objects(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "journal" / "t").iterdir())


def test_loose_done_entries_past_the_bound_go_into_one_segment(tmp_path):
    journal = BatchJournal(tmp_path)
    done(journal, range(1, 6))
    journal.record_plan(6, "t", plan_of(6))
    before = answers(journal)
    assert journal.compact("t", at_least=6) == 0  # five loose: not yet
    assert journal.compact("t", at_least=5) == 5
    (segment, loose) = objects(tmp_path)
    assert loose == "0000000000000006.json"  # not done: never compacted
    assert journal_segments.is_segment(segment)
    assert journal_segments.id_range(segment) == (1, 5)
    assert answers(journal) == before
    with a_new_process():
        fresh = BatchJournal(tmp_path)
        assert answers(fresh) == before
        assert fresh.batch(3) == before[5][2]  # found by the segment's name


def test_a_segment_is_its_header_then_its_entries_as_their_objects_held_them(tmp_path):
    journal = BatchJournal(tmp_path)
    done(journal, range(1, 4))
    held = [(tmp_path / "journal" / "t" / f"{i:016d}.json").read_bytes() for i in (1, 2, 3)]
    journal.journal_ends("t")
    journal.compact("t", at_least=3)
    (segment,) = objects(tmp_path)
    header, *lines = (tmp_path / "journal" / "t" / segment).read_bytes().splitlines(True)
    assert lines == held
    assert json.loads(header) == {
        "journal_segment": 1,
        "batch_ids": [1, 2, 3],
        "ends": {"0": 30},
        "heads": {"0": [3, 3]},
        "topic_ids": [TOPIC_ID],
        "totals": {"read": 30, "published": 30, "quarantined": 0, "held": 0},
        "windows": [],
    }


def test_a_new_process_folds_a_segment_in_from_its_header_alone(tmp_path, monkeypatch):
    journal = BatchJournal(tmp_path)
    done(journal, range(1, 5), partition=1)
    journal.journal_ends("t")
    journal.compact("t", at_least=4)

    def unread(*_):
        raise AssertionError("a segment's entries were read")

    monkeypatch.setattr(journal_segments, "entries_of", unread)
    with a_new_process():
        fresh = BatchJournal(tmp_path)
        assert fresh.journal_ends("t") == {1: 40}
        assert fresh.planned("t") == ({1: 40}, {TOPIC_ID})
        assert fresh.state_view("t").latest(1) == (4, 4)


@pytest.mark.parametrize("listed", ["nothing", "the loose objects, deleted since"])
def test_a_listing_taken_while_another_worker_compacts_is_taken_again(
    tmp_path, monkeypatch, listed
):
    journal = BatchJournal(tmp_path)
    done(journal, range(1, 4))
    stale = journal.store.list_folder("journal/t", ".json") if listed != "nothing" else []
    assert journal.journal_ends("t") == {0: 30}
    # Another worker compacts them: its segment first, then the loose objects go.
    path, data = journal_segments.segment("journal/t", [journal.batch(i) for i in (1, 2, 3)])
    journal.store.write_bytes(path, data)
    for batch_id in (1, 2, 3):
        journal.store.delete(f"journal/t/{batch_id:016d}.json")
    listings = [stale]
    real = Store.list_folder
    monkeypatch.setattr(
        Store, "list_folder", lambda self, *a: listings.pop() if listings else real(self, *a)
    )
    assert journal.journal_ends("t") == {0: 30}
    assert not listings  # the stale listing was taken, and contradicted the fold


def test_two_workers_compacting_at_once_count_each_entry_once(tmp_path):
    journal = BatchJournal(tmp_path)
    done(journal, range(1, 7))
    before = answers(journal)
    # Another worker saw batches 3-6 loose and compacted them, as this one compacts 1-6.
    path, data = journal_segments.segment("journal/t", [journal.batch(i) for i in range(3, 7)])
    journal.store.write_bytes(path, data)
    assert journal.compact("t", at_least=6) == 6
    assert len(objects(tmp_path)) == 2
    assert answers(journal) == before
    with a_new_process():
        assert answers(BatchJournal(tmp_path)) == before
        assert BatchJournal(tmp_path).totals()["read"] == 60


def test_an_entry_written_loose_again_beside_its_segment_is_one_entry(tmp_path):
    journal = BatchJournal(tmp_path)
    done(journal, range(1, 4))
    journal.journal_ends("t")
    journal.compact("t", at_least=3)
    journal.set_state(2, "done")  # a redo's owner marks it done once more
    assert [e["batch_id"] for e in journal.entries("t")] == [1, 2, 3]
    assert journal.totals()["read"] == 30
    assert journal.journal_ends("t") == {0: 30}
    with a_new_process():
        assert BatchJournal(tmp_path).journal_ends("t") == {0: 30}


@pytest.mark.parametrize(
    "damage",
    [
        b"not json\n",
        b'{"journal_segment": 1, "batch_ids": [99], "ends": {}, "heads": {}}\n',  # not its ids
        b'{"journal_segment": 1, "batch_ids": [1]}\n',  # no fold
        b'{"journal_segment": 1, "batch_ids": [1], "ends": {}, "heads": {}, "topic_ids": 5}\n',
    ],
)
def test_a_segment_that_cannot_be_read_stops_the_questions_and_names_it(tmp_path, damage):
    journal = BatchJournal(tmp_path)
    done(journal, range(1, 3))
    journal.journal_ends("t")
    journal.compact("t", at_least=2)
    (segment,) = objects(tmp_path)
    (tmp_path / "journal" / "t" / segment).write_bytes(damage)
    with a_new_process(), pytest.raises(JournalDamaged, match=segment):
        BatchJournal(tmp_path).journal_ends("t")
    with a_new_process(), pytest.raises(JournalDamaged, match=segment):
        BatchJournal(tmp_path).entries("t")  # not an empty answer
    with a_new_process(), pytest.raises(JournalDamaged, match=segment):
        journal_report(BatchJournal(tmp_path), 5)  # `rda status`: not a report without them


def test_a_segment_holds_done_entries_only():
    with pytest.raises(ValueError, match="done entries"):
        journal_segments.segment("journal/t", [{"batch_id": 1, "state": "anchored", "plan": {}}])
    with pytest.raises(ValueError, match="done entries"):
        journal_segments.segment("journal/t", [])


def test_a_read_only_journal_never_compacts(tmp_path):
    done(BatchJournal(tmp_path), range(1, 4))
    reader = BatchJournal(tmp_path, read_only=True)
    reader.journal_ends("t")
    assert reader.compact("t", at_least=1) == 0
    assert len(objects(tmp_path)) == 3


@settings(max_examples=25, deadline=None)
@given(rounds, rounds, st.integers(1, 4))
def test_compacting_between_rounds_changes_no_answer(first, later, bound):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        journal = BatchJournal(root)
        for number, rows in enumerate((first, later)):
            journal_round(journal, number, rows)
            expected = answers(journal)
            journal.compact("t", at_least=bound)
            assert answers(journal) == expected
            with a_new_process():
                assert answers(BatchJournal(root)) == expected


done_entries = st.lists(
    st.builds(
        lambda batch_id, partition, end, position, topic_id, unread: {
            "batch_id": batch_id,
            "topic": "t",
            "state": "done",
            "plan": {
                "ranges": [{"partition": partition, "start": 0, "end": end}],
                "state": {str(partition): {"base": None, "position": position}},
                **({"topic_id": topic_id} if topic_id else {}),  # plans before topic ids: none
                # partitions it read nothing of, first seen (plans before: none)
                **(
                    {"unread_from": [{"partition": 4, "offset": unread}]}
                    if unread is not None
                    else {}
                ),
            },
        },
        st.integers(1, 2**62),
        st.integers(0, 3),
        st.integers(0, 10**9),
        st.integers(0, 50),
        st.sampled_from([None, TOPIC_ID, "0190a1b2-0000-7000-8000-000000000001"]),
        st.none() | st.integers(0, 10**9),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda e: e["batch_id"],
)


@settings(max_examples=50, deadline=None)
@given(done_entries)
def test_a_segment_reads_back_its_entries_and_its_header_folds_as_they_do(entries):
    path, data = journal_segments.segment("journal/t", entries)
    ordered = sorted(entries, key=lambda e: e["batch_id"])
    assert journal_segments.is_segment(path)
    assert journal_segments.id_range(path) == (ordered[0]["batch_id"], ordered[-1]["batch_id"])
    assert journal_segments.entries_of(path, data) == ordered
    header = journal_segments.header_of(path, data)
    assert header["batch_ids"] == [e["batch_id"] for e in ordered]
    one_by_one, merged = DoneFold(), DoneFold()
    for entry in reversed(entries):  # in any order: a fold is a maximum
        one_by_one.add(entry)
    merged.merge(header)
    assert (merged.ends, merged.heads, merged.topic_ids) == (
        one_by_one.ends,
        one_by_one.heads,
        one_by_one.topic_ids,
    )
