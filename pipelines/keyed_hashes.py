"""Keyed hashes of many values at once: the pseudonyms' hot path (``pipelines/anonymize.py``).

A batch pseudonymizes every distinct identifier it holds (a subscriber session carries four), so
these run once per value, in the landing children. Both functions compute exactly what the
one-value standard library calls do, faster for a list:

- ``hmac_sha256_many(key, messages)`` is ``[hmac.digest(key, m, "sha256") for m in messages]``
  (RFC 2104). OpenSSL's one-shot HMAC sets itself up again at every call; here the keyed inner
  and outer SHA-256 states are made once and copied per message, as the standard library's own
  pure-Python HMAC does (measured on 35,000 identifiers: 4.1 µs a message one-shot, 3.4 with
  ``hmac.new(...).copy()``, 1.9 here).
- ``hex_prefixes(digests, n)`` is ``[d.hex()[:n] for d in digests]`` as a string array: one hex
  conversion of all the digests together, then a slice of each with numpy, no call per value.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

_BLOCK = 64  # SHA-256's block size in bytes: the key is padded (or first hashed) to it
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


def hmac_sha256_many(key: bytes, messages: Iterable[bytes]) -> list[bytes]:
    """The HMAC-SHA256 of each message under ``key``, in order."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner, outer = (
        hashlib.sha256(key.translate(_INNER_PAD)),
        hashlib.sha256(key.translate(_OUTER_PAD)),
    )
    macs = []
    for message in messages:
        keyed = inner.copy()
        keyed.update(message)
        mac = outer.copy()
        mac.update(keyed.digest())
        macs.append(mac.digest())
    return macs


def hex_prefixes(digests: list[bytes], hex_chars: int) -> pa.StringArray:
    """The first ``hex_chars`` lowercase hex digits of each digest (all of one length)."""
    count = len(digests)
    if not count:
        return pa.array([], pa.string())
    size = len(digests[0])
    width = 2 * size
    if not 0 < hex_chars <= width or set(map(len, digests)) != {size}:  # no Python call a digest
        raise ValueError("digests of one length, and at most that many hex digits, are needed")
    text = np.frombuffer(binascii.hexlify(b"".join(digests)), np.uint8).reshape(count, width)
    data = np.ascontiguousarray(text[:, :hex_chars]).tobytes()
    offsets = np.arange(0, (count + 1) * hex_chars, hex_chars, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))
