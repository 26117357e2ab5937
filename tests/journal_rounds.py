"""Journals grown in rounds of batches, for the journal's property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from streaming.journal import STATES, BatchJournal

# A round: per batch, its partition, its event-time state's position, its journal state and the
# end of its range.
rounds = st.lists(
    st.tuples(st.integers(0, 2), st.integers(1, 6), st.sampled_from(STATES), st.integers(1, 500)),
    min_size=1,
    max_size=8,
)


def journal_round(journal: BatchJournal, number: int, rows: list[tuple]) -> None:
    """Journal round ``number``'s batches (ids ``number * 100 + 1`` on), each moved to its
    state, its event-time state based on the batch before it."""
    for i, (partition, position, state, end) in enumerate(rows):
        batch_id = number * 100 + i + 1
        plan = {
            "ranges": [{"partition": partition, "start": 0, "end": end}],
            "state": {str(partition): {"base": batch_id - 1 or None, "position": position}},
        }
        journal.record_plan(batch_id, "t", plan)
        journal.set_state(batch_id, state)
