"""Whether an Ed25519 public key is a point of small order, which vouches for nothing.

RFC 8032 verification as OpenSSL does it (cofactorless, any encoding of ``y`` reduced mod p)
accepts the signature ``R = identity, S = 0`` for every message under a key of small order (the
identity ``01 00…00`` among them): a node registered with one could have any report "signed" by
anyone. A point has small order when eight times it is the identity: three doublings on the
curve −x² + y² = 1 + d·x²·y², in plain integers (this runs once per key, never per report).
"""

from __future__ import annotations

import functools

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
_SQRT_MINUS_ONE = pow(2, (P - 1) // 4, P)
_IDENTITY = (0, 1)


@functools.lru_cache(maxsize=1 << 14)  # a registry snapshot asks for every key, every batch
def small_order(public_key: bytes) -> bool:
    """True for a 32-byte encoding of a point whose order divides 8 (``y`` taken mod p, as
    lenient decoders do); False for any other point, and for bytes that are no point at all
    (nothing verifies under those)."""
    point = _decoded(public_key)
    if point is None:
        return False
    for _ in range(3):
        point = _added(point, point)
    return point == _IDENTITY


def _decoded(encoding: bytes) -> tuple[int, int] | None:
    if len(encoding) != 32:
        return None
    number = int.from_bytes(encoding, "little")
    y, negative = (number & ((1 << 255) - 1)) % P, number >> 255
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P  # RFC 8032 5.1.3
    if v * x * x % P == (-u) % P:
        x = x * _SQRT_MINUS_ONE % P
    if v * x * x % P != u:
        return None
    if x % 2 != negative:
        x = (P - x) % P
    return x, y


def _added(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    x = (x1 * y2 + y1 * x2) * pow(1 + t, -1, P) % P
    y = (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P
    return x, y
