"""Properties of proofs.merkle, merkle_proofs and merkle_verify, checked against a literal
transcription of RFC 9162 2.1.

Decided and tested here: a consistency proof from size 0 is the empty proof, and it verifies
only with ``old_root == EMPTY_ROOT`` (every tree extends the empty tree; the RFC defines
proofs for 0 < m only).

Known property of RFC 9162 proofs, pinned here: they do not authenticate the (new) tree size on
their own. An inclusion proof made for size n also verifies, with the same root, at any other
size whose path has the same shape (leaf 0 of size 5, 6, 7 or 8), and so does a consistency
proof for another new size. The old size of a consistency proof is bound (through the old
root). Sizes must come from the anchored checkpoints that carry the roots, never from a proof.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.merkle import EMPTY_ROOT, MerkleFrontier, leaf_hash, leaf_hashes, node_hash, root
from proofs.merkle_proofs import consistency_proof, inclusion_proof
from proofs.merkle_verify import verify_consistency, verify_inclusion

# -- RFC 9162 2.1, transcribed literally (recursive, slices) -----------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_inclusion_shape(m: int, n: int) -> list[bool]:
    """Bottom-up: True where the path element is hashed on the left of the running hash."""
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_inclusion_shape(m, k), False]
    return [*ref_inclusion_shape(m - k, n - k), True]


def tree(size: int, salt: int) -> list[bytes]:
    """``size`` distinct leaf hashes."""
    return leaf_hashes(f"{salt}:{i}".encode() for i in range(size))


def flip(value: bytes, bit: int) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


sizes = st.integers(min_value=1, max_value=300)
salts = st.integers(min_value=0, max_value=2**32)

Case = tuple[list[bytes], int, list[bytes]]


@st.composite
def inclusion_cases(draw: st.DrawFn, min_size: int = 1) -> Case:
    """A tree of distinct leaves, one leaf's index and that leaf's inclusion proof."""
    leaves = tree(draw(st.integers(min_size, 300)), draw(salts))
    index = draw(st.integers(0, len(leaves) - 1))
    return leaves, index, inclusion_proof(leaves, index)


@st.composite
def consistency_cases(draw: st.DrawFn) -> Case:
    """A tree of at least two distinct leaves, an old size between and the proof from it."""
    leaves = tree(draw(st.integers(2, 300)), draw(salts))
    old = draw(st.integers(1, len(leaves) - 1))
    return leaves, old, consistency_proof(leaves, old)


# -- agreement with the RFC text ----------------------------------------------------------------


@pytest.mark.parametrize("size", range(0, 70))
def test_root_matches_rfc_definition(size: int) -> None:
    leaves = tree(size, 0)
    assert root(leaves) == ref_mth(leaves)


@pytest.mark.parametrize("size", range(1, 40))
def test_inclusion_proofs_match_rfc_path_for_every_index(size: int) -> None:
    leaves = tree(size, 0)
    for index in range(size):
        assert inclusion_proof(leaves, index) == ref_path(index, leaves)


@pytest.mark.parametrize("size", range(1, 40))
def test_consistency_proofs_match_rfc_subproof_for_every_old_size(size: int) -> None:
    leaves = tree(size, 0)
    for old in range(1, size + 1):
        assert consistency_proof(leaves, old) == ref_subproof(old, leaves, True)


@given(size=st.integers(min_value=0, max_value=3000), salt=salts)
def test_root_matches_rfc_definition_for_larger_trees(size: int, salt: int) -> None:
    leaves = tree(size, salt)
    assert root(leaves) == ref_mth(leaves)


# -- inclusion ----------------------------------------------------------------------------------


@settings(max_examples=50)
@given(size=sizes, salt=salts)
def test_every_leaf_inclusion_proof_verifies(size: int, salt: int) -> None:
    leaves = tree(size, salt)
    top = root(leaves)
    for index, leaf in enumerate(leaves):
        assert verify_inclusion(leaf, index, size, inclusion_proof(leaves, index), top)


@given(inclusion_cases())
def test_inclusion_fails_for_another_leaf(case: Case) -> None:
    leaves, index, proof = case
    other = leaf_hash(b"not in the tree")
    assert not verify_inclusion(other, index, len(leaves), proof, root(leaves))


@given(inclusion_cases(min_size=2), st.data())
def test_inclusion_fails_for_any_changed_path_element(case: Case, data: st.DataObject) -> None:
    leaves, index, proof = case
    position = data.draw(st.integers(0, len(proof) - 1))
    proof[position] = flip(proof[position], data.draw(st.integers(0, 7)))
    assert not verify_inclusion(leaves[index], index, len(leaves), proof, root(leaves))


@given(inclusion_cases(min_size=2), st.data())
def test_inclusion_fails_at_another_index(case: Case, data: st.DataObject) -> None:
    leaves, index, proof = case
    other = data.draw(st.integers(0, len(leaves) - 1).filter(lambda i: i != index))
    assert not verify_inclusion(leaves[index], other, len(leaves), proof, root(leaves))


@given(inclusion_cases(), st.data())
def test_inclusion_at_another_size_verifies_only_for_the_same_path_shape(
    case: Case, data: st.DataObject
) -> None:
    leaves, index, proof = case
    size = len(leaves)
    other_size = data.draw(st.integers(0, 2 * size + 2).filter(lambda n: n != size))
    accepted = verify_inclusion(leaves[index], index, other_size, proof, root(leaves))
    same_shape = index < other_size and ref_inclusion_shape(
        index, other_size
    ) == ref_inclusion_shape(index, size)
    assert accepted == same_shape


def test_inclusion_proof_does_not_bind_the_tree_size_by_itself() -> None:
    leaves = tree(5, 0)
    proof = inclusion_proof(leaves, 0)
    accepted = [n for n in range(1, 17) if verify_inclusion(leaves[0], 0, n, proof, root(leaves))]
    assert accepted == [5, 6, 7, 8]


@given(inclusion_cases(), st.integers(0, 7))
def test_inclusion_fails_against_another_root(case: Case, bit: int) -> None:
    leaves, index, proof = case
    bad_root = flip(root(leaves), bit)
    assert not verify_inclusion(leaves[index], index, len(leaves), proof, bad_root)


@given(inclusion_cases(min_size=2))
def test_inclusion_fails_with_an_element_added_or_removed(case: Case) -> None:
    leaves, index, proof = case
    top = root(leaves)
    assert not verify_inclusion(leaves[index], index, len(leaves), proof[:-1], top)
    assert not verify_inclusion(leaves[index], index, len(leaves), [*proof, top], top)


# -- consistency --------------------------------------------------------------------------------


@settings(max_examples=50)
@given(size=sizes, salt=salts)
def test_consistency_proofs_verify_for_every_old_size(size: int, salt: int) -> None:
    leaves = tree(size, salt)
    new_root = root(leaves)
    for old in range(1, size + 1):
        proof = consistency_proof(leaves, old)
        assert verify_consistency(old, size, root(leaves[:old]), new_root, proof)


@given(size=sizes, salt=salts)
def test_consistency_from_empty_tree_is_empty_and_needs_the_empty_root(
    size: int, salt: int
) -> None:
    leaves = tree(size, salt)
    assert consistency_proof(leaves, 0) == []
    assert verify_consistency(0, size, EMPTY_ROOT, root(leaves), [])
    assert not verify_consistency(0, size, leaves[0], root(leaves), [])


@given(size=sizes, salt=salts)
def test_consistency_between_equal_sizes_is_empty(size: int, salt: int) -> None:
    leaves = tree(size, salt)
    assert consistency_proof(leaves, size) == []
    assert verify_consistency(size, size, root(leaves), root(leaves), [])


@given(consistency_cases(), st.data())
def test_consistency_fails_for_any_changed_path_element(case: Case, data: st.DataObject) -> None:
    leaves, old, proof = case
    position = data.draw(st.integers(0, len(proof) - 1))
    proof[position] = flip(proof[position], data.draw(st.integers(0, 7)))
    assert not verify_consistency(old, len(leaves), root(leaves[:old]), root(leaves), proof)


@given(consistency_cases(), st.integers(0, 7))
def test_consistency_fails_for_a_changed_root(case: Case, bit: int) -> None:
    leaves, old, proof = case
    size, old_root, new_root = len(leaves), root(leaves[:old]), root(leaves)
    assert not verify_consistency(old, size, flip(old_root, bit), new_root, proof)
    assert not verify_consistency(old, size, old_root, flip(new_root, bit), proof)


@given(consistency_cases(), st.data())
def test_consistency_fails_when_an_old_leaf_changed(case: Case, data: st.DataObject) -> None:
    leaves, old, _proof = case
    changed = data.draw(st.integers(0, old - 1))
    rewritten = list(leaves)
    rewritten[changed] = leaf_hash(b"rewritten history")
    proof = consistency_proof(rewritten, old)
    assert not verify_consistency(old, len(leaves), root(leaves[:old]), root(rewritten), proof)


@given(consistency_cases())
def test_consistency_fails_with_an_element_added_or_removed(case: Case) -> None:
    leaves, old, proof = case
    size, old_root, new_root = len(leaves), root(leaves[:old]), root(leaves)
    assert not verify_consistency(old, size, old_root, new_root, proof[:-1])
    assert not verify_consistency(old, size, old_root, new_root, [*proof, new_root])
    assert not verify_consistency(old, size, old_root, new_root, [old_root, *proof])


@given(consistency_cases(), st.data())
def test_consistency_fails_for_another_old_size(case: Case, data: st.DataObject) -> None:
    leaves, old, proof = case
    other = data.draw(st.integers(0, len(leaves) + 1).filter(lambda m: m != old))
    assert not verify_consistency(other, len(leaves), root(leaves[:old]), root(leaves), proof)


def test_consistency_proof_does_not_bind_the_new_size_by_itself() -> None:
    leaves = tree(5, 0)
    proof = consistency_proof(leaves, 2)
    old_root, new_root = root(leaves[:2]), root(leaves)
    accepted = [n for n in range(17) if verify_consistency(2, n, old_root, new_root, proof)]
    assert accepted == [5, 6, 7, 8]


# -- frontier -----------------------------------------------------------------------------------


@given(
    chunks=st.lists(st.integers(min_value=0, max_value=70), max_size=12),
    salt=salts,
)
def test_frontier_root_equals_root_after_each_chunk_and_round_trip(
    chunks: list[int], salt: int
) -> None:
    leaves = tree(sum(chunks), salt)
    frontier = MerkleFrontier()
    done = 0
    for chunk in chunks:
        frontier.extend(leaves[done : done + chunk])
        done += chunk
        frontier = MerkleFrontier.from_dict(json.loads(json.dumps(frontier.to_dict())))
        assert (frontier.size, frontier.root()) == (done, root(leaves[:done]))


@given(size=st.integers(0, 300), salt=salts)
def test_frontier_append_matches_root_at_every_size(size: int, salt: int) -> None:
    leaves = tree(size, salt)
    frontier = MerkleFrontier()
    assert frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == root(leaves[:n])


@given(size=st.integers(0, 300), salt=salts)
def test_frontier_keeps_one_hash_per_bit_of_the_size(size: int, salt: int) -> None:
    frontier = MerkleFrontier()
    frontier.extend(tree(size, salt))
    assert len(frontier.to_dict()["hashes"]) == bin(size).count("1")


@given(size=st.integers(0, 300), split=st.integers(0, 300), salt=salts)
def test_frontier_extend_equals_appends(size: int, split: int, salt: int) -> None:
    leaves = tree(size, salt)
    one_by_one, in_two = MerkleFrontier(), MerkleFrontier()
    for leaf in leaves:
        one_by_one.append(leaf)
    in_two.extend(leaves[:split])
    in_two.extend(leaves[split:])
    assert one_by_one == in_two
