"""Merkle Tree Hash, inclusion and consistency proofs of RFC 9162 (CT v2), section 2.1.

Standard library only, so that an auditor can run it without the rest of the pipeline.

Notation follows RFC 9162 section 2.1.1: ``D[n]`` is a list of ``n`` entries, ``D[k1:k2]`` the
entries ``k1 .. k2-1``, and for ``n > 1`` the tree splits at ``k``, the largest power of two
smaller than ``n``::

    MTH({})       = SHA-256()                                     # EMPTY_ROOT
    MTH({d(0)})   = SHA-256(0x00 || d(0))                         # leaf_hash
    MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   # node_hash

Every function here works on *leaf hashes* (``leaf_hash(entry)``), never on raw entries, and
rejects anything that is not a 32-byte ``bytes`` value where a leaf hash is expected, so that
raw entries cannot be mistaken for hashes.

Proof generators raise ``ValueError`` for arguments that name no proof (an index outside the
tree, an old size larger than the tree). Verifiers never raise on their inputs: anything that
does not prove the claim, whether a bad proof, an impossible index or size, or a value of the
wrong type or length, makes them return ``False``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleFrontier",
    "SubtreeRoot",
    "consistency_path",
    "consistency_proof",
    "inclusion_path",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in this module (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string, the root of the tree of size 0 (RFC 9162 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256
_HEX = frozenset("0123456789abcdef")


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash ``SHA-256(0x00 || data)`` of one entry (RFC 9162 2.1.1)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Return ``[leaf_hash(e) for e in entries]``, without a Python call per entry."""
    sha256, prefix = _sha256, _LEAF_PREFIX
    return [sha256(prefix + data).digest() for data in entries]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash ``SHA-256(0x01 || left || right)`` (RFC 9162 2.1.1)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash MTH(D[n]) of a list of leaf hashes (RFC 9162 2.1.1).

    Computed level by level: adjacent nodes are paired from the left and a last unpaired node is
    carried up unchanged. This builds exactly the tree of RFC 9162, whose left subtrees are
    complete trees of the largest power of two below ``n``, in O(n) hashes without recursion.
    """
    level = list(leaf_hashes)
    _check_hashes(level)
    if not level:
        return EMPTY_ROOT
    return _fold_levels(level)


def _fold_levels(level: list[bytes]) -> bytes:
    """Reduce a non-empty list of checked node hashes to the hash of the tree over them."""
    sha256, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = zip(level[0::2], level[1::2], strict=False)  # an odd last node has no pair...
        paired = [sha256(prefix + a + b).digest() for a, b in pairs]
        if len(level) % 2:
            paired.append(level[-1])  # ...and moves up a level unchanged
        level = paired
    return level[0]


class MerkleFrontier:
    """The right edge of an append-only Merkle tree: enough state to append and to get the root.

    A tree of size ``n`` is the concatenation of complete subtrees, one per bit set in ``n``,
    largest first; because RFC 9162 2.1.1 splits at the largest power of two, its root is
    ``node(S1, node(S2, ... node(S(j-1), Sj)))`` over their roots ``S1..Sj``. Those
    ``popcount(n)`` hashes are all that appending needs: this is Trillian's "compact range"
    ``[0, n)``. Memory is O(log n), appending costs one node hash per leaf (amortized), and
    ``root()`` is O(log n).

    ``to_dict()`` / ``from_dict()`` give a small JSON-ready form so that a dataset log can resume
    appending in a later batch without rereading old leaves::

        {"size": 5, "hashes": ["<hex root of leaves 0..3>", "<hex leaf hash 4>"]}
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # subtree roots, largest (leftmost) first

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash (like incrementing a binary counter: merge equal-size subtrees)."""
        _check_hash(leaf_hash, "leaf hash")
        hashes = self._hashes
        hashes.append(leaf_hash)
        size = self._size
        while size & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            size >>= 1
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes at once, hashing level by level (same result as ``append``).

        At level ``l`` the nodes to pair are the pending subtree of size ``2**l`` (if bit ``l``
        of the old size is set) followed by the complete level-``l`` nodes built from the new
        leaves; an odd one out is the new pending subtree of that level.
        """
        carry = list(leaf_hashes)
        _check_hashes(carry)
        if not carry:
            return
        old_size, new_size = self._size, self._size + len(carry)
        hashes = self._hashes
        kept: list[bytes] = []  # new pending subtrees, smallest first
        sha256, prefix = _sha256, _NODE_PREFIX
        level = 0
        while carry:
            if (old_size >> level) & 1:
                carry.insert(0, hashes.pop())
            if len(carry) % 2:
                kept.append(carry.pop())
            pairs = zip(carry[0::2], carry[1::2], strict=True)
            carry = [sha256(prefix + a + b).digest() for a, b in pairs]
            level += 1
        hashes.extend(reversed(kept))
        self._size = new_size

    def root(self) -> bytes:
        """Return MTH of all leaves appended so far (``EMPTY_ROOT`` when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            result = node_hash(left, result)
        return result

    def to_dict(self) -> dict[str, object]:
        """Return ``{"size": n, "hashes": [lowercase hex, largest subtree first]}``."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MerkleFrontier:
        """Rebuild a frontier saved by ``to_dict``; raise ``ValueError`` if it is malformed."""
        size, hex_hashes = data.get("size"), data.get("hashes")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"frontier 'size' must be a non-negative integer, got {size!r}")
        if not isinstance(hex_hashes, list):
            raise ValueError("frontier 'hashes' must be a list of hex strings")
        expected = bin(size).count("1")
        if len(hex_hashes) != expected:
            raise ValueError(
                f"frontier of size {size} must have {expected} hashes "
                f"(one per bit set in the size), got {len(hex_hashes)}"
            )
        for i, text in enumerate(hex_hashes):
            if not (isinstance(text, str) and len(text) == 2 * HASH_SIZE and _HEX.issuperset(text)):
                raise ValueError(f"frontier hash {i} must be 64 lowercase hex digits: {text!r}")
        hashes = [bytes.fromhex(text) for text in hex_hashes]
        frontier = cls()
        frontier._size, frontier._hashes = size, hashes
        return frontier

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleFrontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()})"


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
    _check_hashes(leaf_hashes)
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
    _check_hashes(leaf_hashes)
    return consistency_path(len(leaf_hashes), old_size, _in_memory(leaf_hashes))


SubtreeRoot = Callable[[int, int], bytes]
"""``subtree_root(start, end)`` = MTH(D[start:end]) for ``start < end``: where proofs get hashes."""


def inclusion_path(size: int, index: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """PATH(index, D[size]) with subtree hashes from ``subtree_root``: one call per path entry.

    Every range asked for is a subtree of the RFC 9162 tree: either complete (a power of two
    aligned on its size) or the right edge ``[lo, size)``; a store of complete nodes (as
    ``proofs.log`` keeps on disk) answers each in O(log n) reads.
    """
    if not _is_size(size) or isinstance(index, bool) or not isinstance(index, int):
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
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not _is_size(size):
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
    return _fold_levels(list(leaf_hashes[start:end]))


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
    if not (_is_size(index) and _is_size(tree_size) and _is_hash(leaf_hash) and _is_hash(root)):
        return False
    if not _is_path(proof):
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
    if not (_is_size(old_size) and _is_size(new_size)):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and _is_path(proof)):
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
            return False
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
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_path(proof: object) -> bool:
    return isinstance(proof, (list, tuple)) and all(_is_hash(p) for p in proof)


def _check_hash(value: object, what: str) -> None:
    if not _is_hash(value):
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {_describe(value)}")


def _check_hashes(values: Sequence[bytes]) -> None:
    """Raise ValueError unless every value is a 32-byte ``bytes`` (fast path checks in bulk)."""
    if set(map(type, values)) <= {bytes} and set(map(len, values)) <= {HASH_SIZE}:
        return
    for i, value in enumerate(values):
        if not _is_hash(value):
            raise ValueError(
                f"leaf hash {i} must be {HASH_SIZE} bytes, got {_describe(value)} "
                "(pass leaf_hash(entry), not the entry itself)"
            )


def _describe(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return type(value).__name__
