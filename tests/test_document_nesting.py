"""Untrusted JSON documents are refused by their nesting before they are parsed.

web3 (through py_ecc) raises Python's recursion limit to 100,000; at that limit the JSON parser
recurses into the C stack's end on a document nested ~100,000 deep: ``rda verify`` died of a
segmentation fault on a 200 KB manifest of brackets. Every document a verifier reads, and every
request body the marketplace reads, has its depth counted on its text first.
"""

from __future__ import annotations

import json
import sys

import pytest
from audit_dataset import first_failure, rows
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import rda

from proofs.audit import audit_log
from proofs.bundle import build_bundles, verify_bundle
from proofs.documents import depth_over, nesting_depth, nests_deeper, parse_document
from proofs.leaves import leaf_bytes_for_batch
from proofs.log import LogRef
from proofs.manifest import all_manifests
from proofs.verdict import NOT_VERIFIED

DEEP = 200_000
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),  # text: brackets, quotes, escapes
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=40,
)


def depth(value) -> int:
    """The reference: how many objects and arrays deep ``value`` nests (recursively)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.fixture
def python_at_web3s_recursion_limit():
    """The interpreter as web3 leaves it: deep recursion overflows the C stack first."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    yield
    sys.setrecursionlimit(before)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=6), st.booleans())
def test_the_depth_counted_on_the_text_is_the_values(value, limit, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_depth(text) == depth(value)
    assert (depth_over(text, limit) is None) == (depth(value) <= limit)
    assert nests_deeper(value, limit) == (depth(value) > limit)


def test_mismatched_brackets_count_as_deep_as_the_parser_would_recurse():
    assert nesting_depth(b"[" * 100 + b"}" * 100) == 100


def test_a_document_nested_deeper_than_the_bound_is_a_value_error(
    python_at_web3s_recursion_limit,
):
    with pytest.raises(ValueError, match="nest 200,000 levels, over 64"):
        parse_document(nested(DEEP))  # was a segmentation fault in json.loads


def test_a_manifest_of_deep_brackets_is_not_verified(
    published, chain, python_at_web3s_recursion_limit
):
    dataset_dir, _ = published
    all_manifests(dataset_dir)[-1].write_bytes(nested(DEEP))
    verdict = audit_log(dataset_dir, chain.trust_root())
    assert verdict.status == NOT_VERIFIED
    name, detail = first_failure(verdict)
    assert name == "manifest" and "nest 200,000 levels, over 64" in detail


def test_a_bundle_whose_row_nests_too_deep_is_not_verified(published):
    dataset_dir, checkpoints = published
    (bundle,) = build_bundles(
        LogRef.for_dataset(dataset_dir),
        [0],
        leaf_bytes_for_batch(rows(0, 1)),
        checkpoints[-1],
        None,
    )
    row = bundle["row"]
    for _ in range(700):  # recursed into while the leaf is re-encoded: RecursionError before
        row["nested"] = {}
        row = row["nested"]
    assert first_failure(verify_bundle(bundle)) == ("bundle", "row nests deeper than 64 levels")


def test_rda_verify_refuses_a_bundle_file_of_deep_brackets_in_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(nested(DEEP))
    checked = rda("verify", "--bundle", str(path), state=tmp_path / "state")
    assert checked.returncode == 2, checked.stderr  # a traceback (RecursionError) before
    assert "not a JSON proof bundle" in checked.stderr and "Traceback" not in checked.stderr
