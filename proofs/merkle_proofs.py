"""Inclusion and consistency proofs of RFC 9162 (CT v2), sections 2.1.3.1 and 2.1.4.1.

Standard library only. Proofs are lists of subtree hashes (see ``proofs.merkle`` for the tree
and its notation); ``proofs.merkle_verify`` checks them. The generators here raise
``ValueError`` for arguments that name no proof (an index outside the tree, an old size larger
than the tree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from proofs.merkle import check_hashes, fold_levels, is_size

__all__ = [
    "SubtreeRoot",
    "consistency_path",
    "consistency_proof",
    "inclusion_path",
    "inclusion_proof",
]


def _split(width: int) -> int:
    """Return k, the largest power of two smaller than ``width`` (``width >= 2``)."""
    return 1 << ((width - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path PATH(index, D[n]) of RFC 9162 2.1.3.1, where n = len(leaf_hashes).

    The path lists sibling subtree hashes from the leaf's sibling up to the root's child::

        PATH(m, {d(0)}) = {}
        PATH(m, D[n])   = PATH(m, D[0:k]) : MTH(D[k:n])       if m < k
        PATH(m, D[n])   = PATH(m - k, D[k:n]) : MTH(D[0:k])   if m >= k

    For a proof against an earlier tree size, pass ``leaf_hashes[:tree_size]``.
    """
    check_hashes(leaf_hashes)
    return inclusion_path(len(leaf_hashes), index, _in_memory(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return PROOF(old_size, D[n]) of RFC 9162 2.1.4.1, where n = len(leaf_hashes).

    ::

        PROOF(m, D[n])          = SUBPROOF(m, D[n], true)
        SUBPROOF(m, D[m], true)  = {}
        SUBPROOF(m, D[m], false) = {MTH(D[m])}
        SUBPROOF(m, D[n], b)     = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])         if m <= k
        SUBPROOF(m, D[n], b)     = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) if m > k

    Equal sizes give the empty proof. The RFC defines proofs for 0 < m; here ``old_size == 0``
    also gives the empty proof: the empty tree is a prefix of every tree, and
    ``verify_consistency`` accepts it only with ``old_root == EMPTY_ROOT``.
    For a proof between two earlier sizes, pass ``leaf_hashes[:new_size]``.
    """
    check_hashes(leaf_hashes)
    return consistency_path(len(leaf_hashes), old_size, _in_memory(leaf_hashes))


SubtreeRoot = Callable[[int, int], bytes]
"""``subtree_root(start, end)`` = MTH(D[start:end]) for ``start < end``: where proofs get hashes."""


def inclusion_path(size: int, index: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """PATH(index, D[size]) with subtree hashes from ``subtree_root``: one call per path entry.

    Every range asked for is a subtree of the RFC 9162 tree: either complete (a power of two
    aligned on its size) or the right edge ``[lo, size)``; a store of complete nodes (as
    ``proofs.log`` keeps on disk) answers each in O(log n) reads.
    """
    if not is_size(size) or isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"leaf index {index!r} is not in a tree of size {size!r}")
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index!r} is not in a tree of size {size}")
    path = []
    lo, hi = 0, size  # the subtree D[lo:hi] that contains the leaf
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(lo, lo + k))
            lo += k
    path.reverse()  # collected top-down; RFC order is bottom-up
    return path


def consistency_path(size: int, old_size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """PROOF(old_size, D[size]) with subtree hashes from ``subtree_root`` (see inclusion_path)."""
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not is_size(size):
        raise ValueError(f"old size {old_size!r} must be between 0 and the tree size {size!r}")
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size!r} must be between 0 and the tree size {size}")
    if old_size in (0, size):
        return []
    path = []
    lo, hi = 0, size  # SUBPROOF(old_size - lo, D[lo:hi], complete)
    complete = True
    while old_size != hi:
        k = _split(hi - lo)
        if old_size - lo <= k:
            path.append(subtree_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(lo, lo + k))
            lo += k
            complete = False
    if not complete:
        path.append(subtree_root(lo, hi))
    path.reverse()  # collected top-down; RFC order is bottom-up
    return path


def _in_memory(leaf_hashes: Sequence[bytes]) -> SubtreeRoot:
    return lambda start, end: _subtree_root(leaf_hashes, start, end)


def _subtree_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) for already-checked leaf hashes, ``start < end``."""
    return fold_levels(list(leaf_hashes[start:end]))
