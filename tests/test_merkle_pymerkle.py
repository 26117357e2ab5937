"""Cross-check against pymerkle 7, an independent implementation.

pymerkle's in-memory tree with sha256 and its default security mode prefixes leaves with 0x00
and nodes with 0x01, which is RFC 9162 hashing. Its inclusion proof path is the leaf hash
followed by the RFC 9162 audit path; its indices count from 1. Its consistency proofs use a
different format (they also carry the old tree's subtree roots), so they are not compared.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from proofs.merkle import leaf_hash, leaf_hashes, root
from proofs.merkle_proofs import inclusion_proof
from proofs.merkle_verify import verify_inclusion


def pymerkle_tree(entries: list[bytes]) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")  # security mode on: 0x00 / 0x01 prefixes
    for entry in entries:
        tree.append_entry(entry)
    return tree


entry_lists = st.lists(st.binary(max_size=40), max_size=200)


def test_pymerkle_uses_rfc9162_prefixes() -> None:
    tree = InmemoryTree(algorithm="sha256")
    assert (tree.security, tree.leaf_prefix, tree.node_prefix) == (True, b"\x00", b"\x01")


@given(entries=entry_lists)
def test_leaf_hashes_match_pymerkle(entries: list[bytes]) -> None:
    tree = pymerkle_tree(entries)
    assert [tree.get_leaf(i + 1) for i in range(len(entries))] == [leaf_hash(e) for e in entries]


@given(entries=entry_lists)
def test_roots_match_pymerkle_at_every_size(entries: list[bytes]) -> None:
    tree = pymerkle_tree(entries)
    hashes = leaf_hashes(entries)
    for size in range(len(entries) + 1):
        assert root(hashes[:size]) == tree.get_root(size)


@settings(max_examples=60)
@given(entries=entry_lists.filter(bool), data=st.data())
def test_inclusion_proofs_match_pymerkle(entries: list[bytes], data: st.DataObject) -> None:
    tree = pymerkle_tree(entries)
    hashes = leaf_hashes(entries)
    size = data.draw(st.integers(1, len(entries)))
    index = data.draw(st.integers(0, size - 1))
    theirs = tree.prove_inclusion(index + 1, size).path
    assert [hashes[index], *inclusion_proof(hashes[:size], index)] == theirs


@settings(max_examples=60)
@given(entries=entry_lists.filter(bool), data=st.data())
def test_pymerkle_inclusion_proofs_verify_here(entries: list[bytes], data: st.DataObject) -> None:
    tree = pymerkle_tree(entries)
    size = data.draw(st.integers(1, len(entries)))
    index = data.draw(st.integers(0, size - 1))
    path = tree.prove_inclusion(index + 1, size).path
    assert verify_inclusion(path[0], index, size, path[1:], tree.get_root(size))


@pytest.mark.parametrize("size", [1000, 1023, 1024, 1025, 4099])
def test_larger_tree_roots_match_pymerkle(size: int) -> None:
    entries = [i.to_bytes(4, "big") for i in range(size)]
    assert root(leaf_hashes(entries)) == pymerkle_tree(entries).get_root()
