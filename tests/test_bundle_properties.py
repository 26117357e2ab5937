"""Properties of proof bundles over logs of every shape, offline: built from the stored log, no
check fails (the verdict is INCOMPLETE: nothing pinned, no chain); changed in any one field, a
check fails. ``test_verdict_properties.py`` has the same with a pinned identity and a chain."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.bundle import build_bundles, verify_bundle
from proofs.jcs import canonicalize
from proofs.log import DatasetLog
from proofs.merkle import leaf_hash, root
from proofs.merkle_proofs import inclusion_proof
from proofs.merkle_verify import verify_inclusion
from proofs.verdict import INCOMPLETE

json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
# Rows are distinct, as published rows are (their lineage columns differ): with two equal rows,
# a bundle moved to the other's index would be a true statement, not a forgery.
row_lists = st.lists(
    st.dictionaries(st.text(min_size=1, max_size=4), json_values, max_size=4),
    min_size=1,
    max_size=40,
).map(lambda rows: [{**row, "#": number} for number, row in enumerate(rows)])


def bundles_for(rows: list[dict], directory: str) -> list[dict]:
    log = DatasetLog(Path(directory) / "log", "prop.v1")
    size, root = log.append_at(0, [leaf_hash(canonicalize(r)) for r in rows])
    checkpoint = {"tree_size": size, "root": root.hex(), "manifest_sha256": "ab" * 32}
    return build_bundles(log, list(range(size)), rows, checkpoint, None)


@settings(max_examples=50, deadline=None)
@given(row_lists)
def test_every_rows_bundle_verifies(rows):
    with tempfile.TemporaryDirectory() as directory:
        for bundle in bundles_for(rows, directory):
            verdict = verify_bundle(bundle)
            assert verdict.first_failure is None and verdict.status == INCOMPLETE


@settings(max_examples=80, deadline=None)
@given(row_lists, st.data())
def test_a_bundle_changed_in_any_field_fails(rows, data):
    with tempfile.TemporaryDirectory() as directory:
        bundles = bundles_for(rows, directory)
    index = data.draw(st.integers(min_value=0, max_value=len(bundles) - 1))
    bundle = copy.deepcopy(bundles[index])
    field = data.draw(st.sampled_from(["row", "leaf_index", "audit_path", "root", "tree_size"]))
    if field == "row":
        bundle["row"]["\u00e9new"] = 1
    elif field == "leaf_index":
        bundle["leaf_index"] = data.draw(
            st.integers(min_value=0, max_value=63).filter(lambda i: i != index)
        )
    elif field == "audit_path":
        if not bundle["audit_path"]:
            return  # a one-leaf tree has no path to change
        position = data.draw(st.integers(min_value=0, max_value=len(bundle["audit_path"]) - 1))
        bundle["audit_path"][position] = "00" * 32
    elif field == "root":
        bundle["checkpoint"]["root"] = "11" * 32
    else:
        bundle["checkpoint"]["tree_size"] += data.draw(st.integers(min_value=1, max_value=64))
        if _same_shape(index, len(bundles), bundle["checkpoint"]["tree_size"]):
            return  # sizes are bound by the anchored checkpoint, not the proof (doc section 5)
    assert verify_bundle(bundle).first_failure is not None


def _same_shape(index: int, size: int, other: int) -> bool:
    """Whether the audit path of ``index`` has the same shape in trees of both sizes."""
    hashes = [leaf_hash(bytes([i % 256, i // 256])) for i in range(max(size, other))]
    proof = inclusion_proof(hashes[:size], index)
    return verify_inclusion(hashes[index], index, other, proof, root(hashes[:size]))
