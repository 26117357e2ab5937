"""The offsets a checkpoint's batch says it skipped (``batch.lost[]``), as the verifier shows
them: read from the publisher's manifest as hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.skipped_offsets import SHOWN, Skipped, skipped_offsets, with_skipped
from proofs.verdict import Check


def _lost(*ranges: tuple[int, int, int]) -> dict:
    lost = [{"topic": "fleet", "partition": p, "start": s, "end": e} for p, s, e in ranges]
    return {"batch": {"id": 7, "ranges": [], "lost": lost}}


def test_a_batch_without_lost_offsets_says_nothing():
    assert skipped_offsets({"batch": {"id": 7, "ranges": []}}) is None
    assert skipped_offsets({}) is None
    assert skipped_offsets(_lost()) is None


def test_lost_offsets_are_counted_and_each_range_named_with_its_last_offset():
    assert skipped_offsets(_lost((1, 30, 60), (3, 0, 5))) == Skipped(
        True,
        "its batch skipped 35 offsets the publisher says the broker deleted before they were "
        "read (retention): fleet.p1 30-59; fleet.p3 0-4",
    )


def test_a_long_declaration_names_its_first_ranges_and_counts_the_rest():
    skipped = skipped_offsets(_lost(*((p, 0, 1) for p in range(SHOWN + 3))))
    assert skipped is not None and skipped.ok
    assert skipped.detail.endswith(f"fleet.p{SHOWN - 1} 0-0; and 3 more ranges")
    assert skipped.detail.count("fleet.p") == SHOWN


@pytest.mark.parametrize(
    "lost",
    [
        "0-10",
        {"topic": "fleet", "partition": 0, "start": 0, "end": 1},  # not a list
        [["fleet", 0, 0, 1]],
        [{"topic": "fleet", "partition": 0, "start": 5, "end": 5}],  # empty
        [{"topic": "fleet", "partition": 0, "start": 9, "end": 5}],
        [{"topic": "fleet", "partition": -1, "start": 0, "end": 5}],
        [{"topic": "fleet", "partition": 0, "start": True, "end": 5}],
        [{"topic": "fleet", "partition": 0, "start": 0.0, "end": 5}],
        [{"topic": "fleet", "partition": 0, "start": 0, "end": 2**64}],
        [{"topic": "[/red]", "partition": 0, "start": 0, "end": 5}],  # the printout's markup
        [{"topic": "fleet\x1b[2J", "partition": 0, "start": 0, "end": 5}],  # a terminal's
        [{"topic": "fleet", "partition": 0, "start": 0, "end": 5, "note": "x"}],
        [{"topic": "fleet", "partition": 0, "start": 0}],
    ],
)
def test_a_malformed_declaration_fails_the_manifest_check_saying_what_it_must_be(lost):
    assert skipped_offsets({"batch": {"id": 7, "lost": lost}}) == Skipped(
        False,
        "its batch's lost[] must be a list of {topic, partition, start, end} with "
        "0 <= start < end (docs/proof-format.md)",
    )


def test_a_passed_check_gets_the_declaration_beside_its_detail_and_a_malformed_one_fails_it():
    passed, failed = Check("consistency", True, "30 → 95: ok"), Check("manifest", False, "no")
    said = with_skipped(passed, _lost((0, 30, 60)))
    assert said == Check(
        "consistency", True, f"30 → 95: ok; {skipped_offsets(_lost((0, 30, 60))).detail}"
    )
    assert with_skipped(passed, {"batch": {"lost": [{"topic": "[/x]"}]}}).ok is False
    assert with_skipped(failed, _lost((0, 30, 60))) is failed  # its own failure comes first
    assert with_skipped(passed, {"batch": {"id": 7}}) is passed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["topic", "partition", "start", "end", "x"]), children)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_any_batch_section_is_read_without_raising(batch, lost):
    for manifest in ({"batch": batch}, {"batch": {"id": 1, "lost": lost}}):
        skipped = skipped_offsets(manifest)
        assert skipped is None or isinstance(skipped, Skipped)
