"""GE's metric ids without its JSON conversion for plain values: the same strings as GE's own."""

from __future__ import annotations

import datetime as dt
import enum
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from validators import ge_ids
from validators.expectations import _great_expectations


class Colour(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def _id_dict() -> type:
    _great_expectations()  # installs the replacement
    from great_expectations.core.id_dict import IDDict

    return IDDict


_scalars = st.one_of(
    st.text(max_size=8),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40).map(np.int64),
    st.floats(allow_nan=True).map(np.float64),
    st.booleans().map(np.bool_),
    st.sampled_from([Colour.RED, Level.HIGH, dt.date(2026, 12, 4), b"raw", math.nan]),
)
_keys = st.one_of(st.text(max_size=6), st.integers(0, 9), st.booleans(), st.none())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(st.integers(0, 20), max_size=4),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=3),
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=6), _values, max_size=5))
def test_an_id_is_the_string_ge_s_own_to_id_gives(kwargs):
    id_dict = _id_dict()
    value = id_dict(kwargs)
    assert value.to_id() == ge_ids.original_to_id(value)


@given(st.dictionaries(st.text(max_size=6), _values, min_size=3, max_size=5), st.data())
def test_an_id_over_some_keys_is_the_string_ge_s_own_gives(kwargs, data):
    id_dict = _id_dict()
    keys = data.draw(st.sets(st.sampled_from(sorted(kwargs))))
    ignored = data.draw(st.sets(st.sampled_from(sorted(kwargs))))
    value = id_dict(kwargs)
    expected = ge_ids.original_to_id(value, id_keys=keys, id_ignore_keys=ignored)
    assert value.to_id(id_keys=keys, id_ignore_keys=ignored) == expected


def test_only_exact_json_types_are_plain():
    assert ge_ids.plain({"column": "rsrp_dbm", "bounds": [-140, -44.0], "strict": (True, None)})
    assert not ge_ids.plain({"x": math.nan})  # GE writes null
    assert not ge_ids.plain({"x": np.float64(1.5)})
    assert not ge_ids.plain({"x": Colour.RED})
    assert not ge_ids.plain({"x": {1, 2}})
    assert not ge_ids.plain({1: "one"})
