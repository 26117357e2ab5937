"""Bad arguments to the Merkle code: builders raise a clear ``ValueError``, verifiers say False.

A verifier is handed whatever an untrusted bundle holds, so it never raises on malformed input.
"""

from __future__ import annotations

import pytest

from proofs.merkle import EMPTY_ROOT, MerkleFrontier, leaf_hash, root
from proofs.merkle_proofs import consistency_proof, inclusion_proof
from proofs.merkle_verify import verify_consistency, verify_inclusion


def tree(size: int) -> list[bytes]:
    return [leaf_hash(f"leaf {i}".encode()) for i in range(size)]


@pytest.mark.parametrize("index", [-1, 5, 6])
def test_inclusion_proof_rejects_index_outside_tree(index: int) -> None:
    with pytest.raises(ValueError, match="not in a tree of size 5"):
        inclusion_proof(tree(5), index)


def test_inclusion_proof_rejects_empty_tree() -> None:
    with pytest.raises(ValueError, match="not in a tree of size 0"):
        inclusion_proof([], 0)


@pytest.mark.parametrize("old", [-1, 6])
def test_consistency_proof_rejects_old_size_outside_tree(old: int) -> None:
    with pytest.raises(ValueError, match="between 0 and the tree size 5"):
        consistency_proof(tree(5), old)


def test_root_rejects_raw_entries_in_place_of_leaf_hashes() -> None:
    with pytest.raises(ValueError, match="leaf hash 1 must be 32 bytes, got 3 bytes"):
        root([leaf_hash(b"a"), b"abc"])


def test_frontier_rejects_a_non_hash() -> None:
    with pytest.raises(ValueError, match="must be 32 bytes, got str"):
        MerkleFrontier().append("00" * 32)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"size": -1, "hashes": []}, "non-negative integer"),
        ({"size": True, "hashes": []}, "non-negative integer"),
        ({"size": 3, "hashes": ["00" * 32]}, "must have 2 hashes"),
        ({"size": 1, "hashes": ["0" * 63]}, "64 lowercase hex digits"),
        ({"size": 1, "hashes": ["AB" * 32]}, "64 lowercase hex digits"),
        ({"size": 1, "hashes": ["zz" * 32]}, "64 lowercase hex digits"),
        ({"size": 1, "hashes": [" " * 64]}, "64 lowercase hex digits"),
        ({"size": 1}, "must be a list"),
    ],
)
def test_frontier_from_dict_rejects_malformed_state(state: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MerkleFrontier.from_dict(state)


@pytest.mark.parametrize(
    "args",
    [
        ("leaf", 0, 1, [], "root"),  # str in place of bytes
        (b"\x00" * 31, 0, 1, [], b"\x00" * 31),  # short hashes
        (EMPTY_ROOT, 0, 1, [b"\x00" * 33], EMPTY_ROOT),
        (EMPTY_ROOT, True, 2, [EMPTY_ROOT], EMPTY_ROOT),  # bool is not an index
        (EMPTY_ROOT, 0, 1, "not a list", EMPTY_ROOT),
    ],
)
def test_verify_inclusion_returns_false_for_malformed_input(args: tuple) -> None:
    assert verify_inclusion(*args) is False


@pytest.mark.parametrize(
    "args",
    [
        (1, 2, "root", "root", []),
        (-1, 2, EMPTY_ROOT, EMPTY_ROOT, []),
        (1, 2.0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 2, EMPTY_ROOT, EMPTY_ROOT, [b"short"]),
    ],
)
def test_verify_consistency_returns_false_for_malformed_input(args: tuple) -> None:
    assert verify_consistency(*args) is False
