"""Verification of RFC 9162 (CT v2) inclusion and consistency proofs, sections 2.1.3.2 and
2.1.4.2: what an auditor runs against an anchored root.

Standard library only. The verifiers never raise on their inputs: anything that does not
prove the claim, whether a bad proof, an impossible index or size, or a value of the wrong
type or length, makes them return ``False``.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from proofs.merkle import EMPTY_ROOT, is_hash, is_path, is_size, node_hash

__all__ = ["verify_consistency", "verify_inclusion"]


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return whether ``proof`` shows leaf ``index`` of a tree of ``tree_size`` leaves has hash
    ``leaf_hash`` when the tree's root is ``root``. This is RFC 9162 2.1.3.2, step by step::

        1. If index >= tree_size, fail.
        2. fn = index; sn = tree_size - 1.
        3. r = leaf_hash.
        4. For each p in proof:
           a. If sn == 0, fail.
           b. If LSB(fn) is set or fn == sn:
                 r = HASH(0x01 || p || r)
                 If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn == 0.
              Otherwise:
                 r = HASH(0x01 || r || p)
           c. Right-shift fn and sn once.
        5. Succeed iff sn == 0 and r == root.
    """
    if not (is_size(index) and is_size(tree_size) and is_hash(leaf_hash) and is_hash(root)):
        return False
    if not is_path(proof):
        return False
    if index >= tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return whether ``proof`` shows the tree of ``old_size`` leaves with root ``old_root`` is a
    prefix of the tree of ``new_size`` leaves with root ``new_root``.

    For ``0 < old_size < new_size`` this is RFC 9162 2.1.4.2, step by step::

        1. If proof is empty, fail.
        2. If old_size is an exact power of 2, prepend old_root to proof.
        3. fn = old_size - 1; sn = new_size - 1.
        4. While LSB(fn) is set, right-shift fn and sn.
        5. fr = sr = proof[0].
        6. For each subsequent c in proof:
           a. If sn == 0, fail.
           b. If LSB(fn) is set or fn == sn:
                 fr = HASH(0x01 || c || fr); sr = HASH(0x01 || c || sr)
                 If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn == 0.
              Otherwise:
                 sr = HASH(0x01 || sr || c)
           c. Right-shift fn and sn once.
        7. Succeed iff fr == old_root, sr == new_root and sn == 0.

    Outside that range the RFC gives no algorithm; this function decides:
    ``old_size == new_size`` succeeds iff the proof is empty and the roots are equal (and equal
    to ``EMPTY_ROOT`` for size 0); ``old_size == 0 < new_size`` succeeds iff the proof is empty
    and ``old_root == EMPTY_ROOT`` (every tree extends the empty tree, so nothing is proven
    about ``new_root``); ``old_size > new_size`` fails.
    """
    if not (is_size(old_size) and is_size(new_size)):
        return False
    if not (is_hash(old_root) and is_hash(new_root) and is_path(proof)):
        return False
    if old_size > new_size:
        return False
    if old_size == 0:
        if new_size == 0 and not hmac.compare_digest(old_root, new_root):
            return False
        return not proof and hmac.compare_digest(old_root, EMPTY_ROOT)
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if not proof:
        return False
    computed = _consistency_roots(old_size, new_size, old_root, proof)
    if computed is None:
        return False
    fr, sr = computed
    return hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes] | None:
    """Steps 2-7 of RFC 9162 2.1.4.2 for ``0 < old_size < new_size`` and a non-empty proof:
    the old and new roots the proof leads to, or None when it does not end at the new root's
    level (``sn != 0``)."""
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return (fr, sr) if sn == 0 else None
