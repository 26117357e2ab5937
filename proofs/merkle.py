"""Merkle Tree Hash of RFC 9162 (CT v2), section 2.1: leaf, node and root hashes, and the
append-only frontier of a growing tree.

Standard library only, so that an auditor can run it without the rest of the pipeline. Proofs
are built in ``proofs.merkle_proofs`` and checked in ``proofs.merkle_verify``.

Notation follows RFC 9162 section 2.1.1: ``D[n]`` is a list of ``n`` entries, ``D[k1:k2]`` the
entries ``k1 .. k2-1``, and for ``n > 1`` the tree splits at ``k``, the largest power of two
smaller than ``n``::

    MTH({})       = SHA-256()                                     # EMPTY_ROOT
    MTH({d(0)})   = SHA-256(0x00 || d(0))                         # leaf_hash
    MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   # node_hash

Every function here works on *leaf hashes* (``leaf_hash(entry)``), never on raw entries, and
rejects anything that is not a 32-byte ``bytes`` value where a leaf hash is expected, so that
raw entries cannot be mistaken for hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleFrontier",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root",
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
    check_hashes(level)
    if not level:
        return EMPTY_ROOT
    return fold_levels(level)


def fold_levels(level: list[bytes]) -> bytes:
    """MTH of a non-empty list of already-checked hashes, reduced level by level (see ``root``)."""
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
        check_hashes(carry)
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


# -- checks shared with proofs.merkle_proofs and proofs.merkle_verify -------------------------


def is_size(value: object) -> bool:
    """Whether ``value`` is a tree size or leaf index: an ``int`` (not a bool), at least 0."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_hash(value: object) -> bool:
    """Whether ``value`` is a hash: ``bytes`` of length ``HASH_SIZE``."""
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def is_path(proof: object) -> bool:
    """Whether ``proof`` is a list or tuple of hashes."""
    return isinstance(proof, (list, tuple)) and all(is_hash(p) for p in proof)


def _check_hash(value: object, what: str) -> None:
    if not is_hash(value):
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {_describe(value)}")


def check_hashes(values: Sequence[bytes]) -> None:
    """Raise ValueError unless every value is a 32-byte ``bytes`` (fast path checks in bulk)."""
    if set(map(type, values)) <= {bytes} and set(map(len, values)) <= {HASH_SIZE}:
        return
    for i, value in enumerate(values):
        if not is_hash(value):
            raise ValueError(
                f"leaf hash {i} must be {HASH_SIZE} bytes, got {_describe(value)} "
                "(pass leaf_hash(entry), not the entry itself)"
            )


def _describe(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return type(value).__name__
