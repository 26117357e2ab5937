"""Small-order Ed25519 points (``proofs/ed25519_points.py``): the eight points whose order
divides 8, in every encoding a lenient decoder accepts, and no real public key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from proofs.ed25519_points import small_order
from proofs.signing import ALGORITHM, key_id, verify_signature

HIGH = b"\xff" * 30 + b"\x7f"
# libsodium's list of small-order encodings (y only; the sign bit is tried both ways below).
SMALL_ORDER = {
    "0 (order 4)": bytes(32),
    "1 (order 1: the identity)": b"\x01" + bytes(31),
    "order 8": bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    "order 8, the other": bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
    ),
    "p-1 (order 2)": b"\xec" + HIGH,
    "p, not reduced (0, order 4)": b"\xed" + HIGH,
    "p+1, not reduced (1, order 1)": b"\xee" + HIGH,
}


@pytest.mark.parametrize("encoding", SMALL_ORDER.values(), ids=SMALL_ORDER.keys())
@pytest.mark.parametrize("sign", [0, 0x80])
def test_every_small_order_encoding_is_found(encoding, sign):
    assert small_order(encoding[:31] + bytes([encoding[31] | sign]))


@given(st.binary(min_size=32, max_size=32))
def test_a_real_public_key_is_not_of_small_order(seed):
    key = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert not small_order(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def test_bytes_that_are_no_point_or_not_32_long_are_not_of_small_order():
    assert not small_order(b"\x02" + bytes(31))  # y = 2: no x on the curve
    assert not small_order(b"\x01" + bytes(30))


def test_a_publisher_signature_under_a_small_order_key_does_not_verify():
    identity = b"\x01" + bytes(31)
    universal = {
        "algorithm": ALGORITHM, "public_key": identity.hex(), "key_id": key_id(identity),
        "signature": (identity + bytes(32)).hex(),  # R = identity, S = 0: any message
    }  # fmt: skip
    assert verify_signature(universal, b"a manifest nobody signed") == (
        "the public key is an Ed25519 point of small order: it vouches for nothing"
    )
