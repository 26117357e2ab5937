"""Published RFC 6962 / RFC 9162 test vectors.

Expected values are copied from transparency-dev/merkle (the Merkle code of Trillian and of
Go certificate-transparency), whose vectors go back to the certificate-transparency C++ suite:

* ``rfc6962/rfc6962_test.go``: hasher vectors;
* ``testonly/constants.go``: the 8 leaf inputs, all complete-subtree hashes, the roots of sizes
  0..8 and the compact ranges of sizes 0..8;
* ``proof/verify_test.go``: inclusion and consistency proofs and the corruptions a verifier
  must reject;
* ``testonly/vectors_test.go``: the "Subtree Test Vectors" of
  draft-ietf-plants-merkle-tree-certs (rolling SHA-256 digests over every subtree hash and
  inclusion proof of a 130-leaf tree).

Their leaf indices are 0-based here (verify_test.go lists 1-based ``leaf`` numbers).
"""

from __future__ import annotations

import hashlib

import pytest

from proofs.merkle import EMPTY_ROOT, MerkleFrontier, leaf_hash, node_hash, root
from proofs.merkle_proofs import consistency_proof, inclusion_proof
from proofs.merkle_verify import verify_consistency, verify_inclusion

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]

# NodeHashes(): level -> hashes of the complete subtrees at that level, left to right.
NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

# RootHashes(): index = tree size.
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# CompactTrees(): index = tree size; (level, index) into NODE_HASHES, largest subtree first.
COMPACT_RANGES = [
    [],
    [(0, 0)],
    [(1, 0)],
    [(1, 0), (0, 2)],
    [(2, 0)],
    [(2, 0), (0, 4)],
    [(2, 0), (1, 2)],
    [(2, 0), (1, 2), (0, 6)],
    [(3, 0)],
]

# verify_test.go inclusionProofs: (0-based leaf index, tree size, proof).
INCLUSION_PROOFS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# verify_test.go consistencyProofs: (old size, new size, proof).
CONSISTENCY_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_leaf_hash_of_empty_entry_differs_from_empty_root() -> None:
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


def test_leaf_hash_prefixes_zero_byte() -> None:
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )


def test_node_hash_prefixes_one_byte() -> None:
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_leaf_hashes_of_the_eight_inputs() -> None:
    assert [x.hex() for x in LEAVES] == NODE_HASHES[0]


@pytest.mark.parametrize("size", range(9))
def test_root_of_first_leaves(size: int) -> None:
    assert root(LEAVES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_frontier_appending_one_by_one(size: int) -> None:
    frontier = MerkleFrontier()
    for leaf in LEAVES[:size]:
        frontier.append(leaf)
    assert (frontier.size, frontier.root().hex()) == (size, ROOTS[size])


@pytest.mark.parametrize("size", range(9))
def test_frontier_holds_the_compact_range(size: int) -> None:
    frontier = MerkleFrontier()
    frontier.extend(LEAVES[:size])
    expected = [NODE_HASHES[level][index] for level, index in COMPACT_RANGES[size]]
    assert frontier.to_dict() == {"size": size, "hashes": expected}


def test_frontier_extended_in_two_chunks() -> None:
    frontier = MerkleFrontier()
    frontier.extend(LEAVES[:3])
    frontier.extend(LEAVES[3:8])
    assert frontier.root().hex() == ROOTS[8]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_inclusion_proof_generation(index: int, size: int, proof: list[str]) -> None:
    assert [x.hex() for x in inclusion_proof(LEAVES[:size], index)] == proof


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_inclusion_proof_verifies(index: int, size: int, proof: list[str]) -> None:
    assert verify_inclusion(LEAVES[index], index, size, h(proof), bytes.fromhex(ROOTS[size]))


def _inclusion_probes(index: int, size: int, proof: list[bytes], root_: bytes, leaf: bytes):
    """corruptInclusionProof() of verify_test.go: each must fail verification."""
    probes = {
        "index - 1": (leaf, index - 1, size, proof, root_),
        "index + 1": (leaf, index + 1, size, proof, root_),
        "index ^ 2": (leaf, index ^ 2, size, proof, root_),
        "size * 2": (leaf, index, size * 2, proof, root_),
        "size // 2": (leaf, index, size // 2, proof, root_),
        "wrong leaf": (leaf_hash(b"WrongLeaf"), index, size, proof, root_),
        "empty root": (leaf, index, size, proof, EMPTY_ROOT),
        "random root": (leaf, index, size, proof, SOME_HASH),
        "trailing garbage": (leaf, index, size, [*proof, b""], root_),
        "trailing root": (leaf, index, size, [*proof, root_], root_),
        "preceding garbage": (leaf, index, size, [b"", *proof], root_),
        "preceding root": (leaf, index, size, [root_, *proof], root_),
    }
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes[f"proof[{i}] bit 3 flipped"] = (leaf, index, size, flipped, root_)
    if proof:
        probes["removed component"] = (leaf, index, size, proof[:-1], root_)
    if len(proof) > 1:
        probes["inserted component"] = (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root_)
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS[1:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[str]) -> None:
    probes = _inclusion_probes(index, size, h(proof), bytes.fromhex(ROOTS[size]), LEAVES[index])
    accepted = [name for name, args in probes.items() if verify_inclusion(*args)]
    assert accepted == []


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1)])
def test_inclusion_fails_when_index_is_not_in_tree(index: int, size: int) -> None:
    assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


def test_single_leaf_tree_root_is_its_leaf_with_empty_proof() -> None:
    leaf = leaf_hash(b"data")
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], leaf)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS)
def test_consistency_proof_generation(old: int, new: int, proof: list[str]) -> None:
    assert [x.hex() for x in consistency_proof(LEAVES[:new], old)] == proof


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS)
def test_consistency_proof_verifies(old: int, new: int, proof: list[str]) -> None:
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, h(proof))


def _consistency_probes(old: int, new: int, old_root: bytes, new_root: bytes, proof):
    """corruptConsistencyProof() of verify_test.go: each must fail verification."""
    wrong = hashlib.sha256(b"WrongRoot").digest()
    probes = {
        "old - 1": (old - 1, new, old_root, new_root, proof),
        "old + 1": (old + 1, new, old_root, new_root, proof),
        "old ^ 2": (old ^ 2, new, old_root, new_root, proof),
        "new * 2": (old, new * 2, old_root, new_root, proof),
        "new // 2": (old, new // 2, old_root, new_root, proof),
        "wrong old root": (old, new, wrong, new_root, proof),
        "wrong new root": (old, new, old_root, wrong, proof),
        "swapped roots": (old, new, new_root, old_root, proof),
        "empty proof": (old, new, old_root, new_root, []),
        "trailing garbage": (old, new, old_root, new_root, [*proof, b""]),
        "trailing old root": (old, new, old_root, new_root, [*proof, old_root]),
        "trailing new root": (old, new, old_root, new_root, [*proof, new_root]),
        "preceding garbage": (old, new, old_root, new_root, [b"", *proof]),
        "preceding old root": (old, new, old_root, new_root, [old_root, *proof]),
        "preceding new root": (old, new, old_root, new_root, [new_root, *proof]),
        "preceding proof[0]": (old, new, old_root, new_root, [proof[0], *proof]),
        "truncated proof": (old, new, old_root, new_root, proof[:-1]),
    }
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes[f"proof[{i}] bit 4 flipped"] = (old, new, old_root, new_root, flipped)
    return probes


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS[1:])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    probes = _consistency_probes(old, new, old_root, new_root, h(proof))
    accepted = [name for name, args in probes.items() if verify_consistency(*args)]
    assert accepted == []


# verify_test.go TestVerifyConsistency edge cases, with this module's stricter size-0 rule:
# a tree of size 0 has exactly one root, EMPTY_ROOT.
A, B = leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2")


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof", "expected"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, EMPTY_ROOT, B, [], True),
        (1, 1, B, B, [], True),
        (0, 0, A, A, [], False),  # only EMPTY_ROOT is the root of size 0
        (0, 1, A, B, [], False),
        (0, 0, A, B, [], False),
        (1, 1, A, B, [], False),
        (1, 0, A, B, [], False),  # time travel to the past
        (2, 1, A, B, [], False),
        (1, 2, A, B, [], False),  # empty proof
        (0, 0, EMPTY_ROOT, B, [], False),
        (1, 1, EMPTY_ROOT, B, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),  # equal roots, non-empty proof
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_consistency_edge_cases(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes], expected: bool
) -> None:
    assert verify_consistency(old, new, old_root, new_root, proof) is expected


def _valid_subtree(start: int, end: int) -> bool:
    """isSubtreeValid(): start is 0 or a multiple of the smallest power of 2 >= end - start."""
    return start == 0 or start % (1 << (end - start - 1).bit_length()) == 0


SUBTREE_TREE = [leaf_hash(bytes([i])) for i in range(130)]  # d[i] = byte i


def test_subtree_hash_vector_of_130_leaf_tree() -> None:
    digest = hashlib.sha256()
    for end in range(1, 131):
        for start in range(end):
            if _valid_subtree(start, end):
                subtree_root = root(SUBTREE_TREE[start:end]).hex()
                digest.update(f"[{start}, {end}) {subtree_root}\n".encode())
    assert digest.hexdigest() == "94a95384a8c69acea9b50d035a58285b3a777cb7a724005faa5e1f1e1190007f"


def test_subtree_inclusion_proof_vector_of_130_leaf_tree() -> None:
    digest = hashlib.sha256()
    for end in range(1, 131):
        for start in range(end):
            if not _valid_subtree(start, end):
                continue
            for index in range(start, end):
                proof = inclusion_proof(SUBTREE_TREE[start:end], index - start)
                line = f"{index} [{start}, {end})" + "".join(" " + p.hex() for p in proof)
                digest.update(line.encode() + b"\n")
    assert digest.hexdigest() == "ac2a8f989e44d99e399db448050ff5f19757df53cfb716aa81015d3955d8163f"
