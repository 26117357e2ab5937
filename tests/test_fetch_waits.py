"""The fetch wait a bounded read asks the broker with: longer when a read gets nothing, the
shorter one tried again after a stretch of whole reads, twice as late each time it fails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.fetch_waits import FETCH_WAITS_MS, MOST_READS_BEFORE_SHORTER, FetchWaits


def _reads_until_shorter(waits: FetchWaits) -> int:
    """Whole reads at the wait in use until the shorter one is asked for again."""
    for reads in range(1, MOST_READS_BEFORE_SHORTER + 2):
        if waits.read_done():
            return reads
    raise AssertionError("the shorter wait was never tried again")


def test_a_reader_starts_with_the_shortest_wait_and_keeps_it_while_reads_get_records():
    waits = FetchWaits()
    assert waits.current_ms == FETCH_WAITS_MS[0] == 10
    assert not any(waits.read_done() for _ in range(1000))
    assert waits.current_ms == 10


def test_each_read_that_gets_nothing_asks_with_the_next_wait_up_to_the_longest():
    waits = FetchWaits((10, 50, 250, 500))
    assert [waits.longer() for _ in range(3)] == [50, 250, 500]
    assert not waits.can_wait_longer()
    with pytest.raises(ValueError, match="500 ms is the longest fetch wait"):
        waits.longer()


def test_the_shorter_wait_is_tried_again_after_a_stretch_of_whole_reads():
    waits = FetchWaits((10, 50), shorter_after=100)
    waits.longer()
    assert _reads_until_shorter(waits) == 100
    assert waits.current_ms == 10


def test_a_shorter_wait_that_fails_again_at_once_is_tried_twice_as_late_each_time():
    waits = FetchWaits((10, 50), shorter_after=100)
    waits.longer()
    stretches = []
    for _ in range(9):
        stretches.append(_reads_until_shorter(waits))
        waits.longer()  # the first read with 10 ms gets nothing again
    assert stretches == [100, 200, 400, 800, 1600, 3200, 6400, 12_800, 12_800]


def test_a_shorter_wait_that_works_again_is_left_after_the_first_stretch_next_time():
    waits = FetchWaits((10, 50), shorter_after=100)
    waits.longer()
    _reads_until_shorter(waits)
    waits.longer()  # failed at once: the next try in 200 reads
    _reads_until_shorter(waits)
    assert waits.read_done() is False  # a whole read at 10 ms: the broker is quick again
    waits.longer()  # a later slow answer
    assert _reads_until_shorter(waits) == 100


def test_a_shorter_wait_that_fails_after_some_reads_is_a_new_slow_answer_not_a_failed_try():
    waits = FetchWaits((10, 50, 250), shorter_after=3)
    waits.longer()
    waits.longer()  # at 250
    _reads_until_shorter(waits)  # back to 50
    waits.read_done()
    waits.longer()  # 250 again, after a whole read at 50
    assert _reads_until_shorter(waits) == 3


@pytest.mark.parametrize(
    ("waits_ms", "shorter_after", "message"),
    [
        ((), 100, "shortest first"),
        ((50, 10), 100, "shortest first"),
        ((10, 50), 0, "at least one read"),
    ],
)
def test_waits_out_of_order_or_no_stretch_are_refused(waits_ms, shorter_after, message):
    with pytest.raises(ValueError, match=message):
        FetchWaits(waits_ms, shorter_after)


@given(st.lists(st.booleans(), max_size=400), st.integers(1, 20))
def test_a_whole_read_keeps_the_wait_or_steps_one_shorter_and_an_empty_one_one_longer(
    reads_got_records: list[bool], shorter_after: int
):
    waits = FetchWaits((10, 50, 250, 500), shorter_after)
    for got_records in reads_got_records:
        before = waits.current_ms
        level = waits.waits_ms.index(before)
        if got_records:  # the same wait, or the one just shorter
            waits.read_done()
            assert waits.waits_ms.index(waits.current_ms) in (level, level - 1)
        elif waits.can_wait_longer():  # the next one
            assert waits.waits_ms.index(waits.longer()) == level + 1
        assert waits.current_ms in (10, 50, 250, 500)
