"""The pseudonyms' keyed hashes of many values at once: the standard library's, value by value."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.keyed_hashes import hex_prefixes, hmac_sha256_many


@settings(deadline=None)
@given(st.binary(max_size=200), st.lists(st.binary(max_size=300), max_size=20))
def test_hmac_sha256_many_is_hmac_digest_of_each_message(key, messages):
    # Keys shorter than, equal to and longer than SHA-256's 64-byte block (then hashed first).
    assert hmac_sha256_many(key, messages) == [hmac.digest(key, m, "sha256") for m in messages]


def test_hmac_sha256_many_matches_rfc_4231_test_case_2():
    (mac,) = hmac_sha256_many(b"Jefe", [b"what do ya want for nothing?"])
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@settings(deadline=None)
@given(
    st.integers(1, 64).flatmap(
        lambda size: st.tuples(
            st.lists(st.binary(min_size=size, max_size=size), max_size=30),
            st.integers(1, 2 * size),
        )
    )
)
def test_hex_prefixes_are_each_digests_leading_hex_digits(case):
    digests, hex_chars = case
    assert hex_prefixes(digests, hex_chars).to_pylist() == [d.hex()[:hex_chars] for d in digests]


@pytest.mark.parametrize(("digests", "hex_chars"), [([bytes(32), bytes(16)], 32), ([bytes(8)], 17)])
def test_hex_prefixes_refuse_mixed_lengths_and_more_digits_than_a_digest_has(digests, hex_chars):
    with pytest.raises(ValueError, match="one length"):
        hex_prefixes(digests, hex_chars)
