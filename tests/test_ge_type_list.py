"""``column_values.in_type_list`` judged once for a column of one type
(``validators/ge_type_list.py``): the same verdict per value as GE's own function, whatever the
column and the type list (the report's bytes: ``tests/test_ge_between.py``)."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
from great_expectations.expectations.metrics.column_map_metrics.column_values_in_type_list import (
    ColumnValuesInTypeList,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from validators import ge_type_list
from validators.expectations import _PANDAS_TYPES

NUMPY_DTYPES = ["bool", "int8", "int32", "int64", "uint16", "uint64", "float32", "float64"]
# The lists the published suites ask for, and others GE understands.
TYPE_LISTS = [*_PANDAS_TYPES.values(), ["str"], ["int"], ["float"], ["str_"], ["int64"], ["bool_"]]


class Text(str):
    """A subclass of str: a value of another type than its neighbours'."""


def verdicts(provider: type, column: pd.Series, type_list: list[str]) -> list[bool]:
    return list(inspect.unwrap(provider._pandas)(provider, column, type_list=type_list))


numpy_columns = st.sampled_from(NUMPY_DTYPES).flatmap(
    lambda dtype: arrays(np.dtype(dtype), st.integers(0, 30)).map(pd.Series)
)
objects = st.one_of(
    st.text(max_size=5), st.integers(), st.floats(), st.booleans(), st.none(),
    st.text(max_size=5).map(Text), st.just(np.str_("x")),
)  # fmt: skip
object_columns = st.one_of(
    st.lists(st.text(max_size=5), max_size=30),  # a text column, as read from Arrow
    st.lists(objects, max_size=30),
).map(lambda values: pd.Series(values, dtype=object))
# A text column as GE gets it (``validators/ge_text.py``).
arrow_text_columns = st.lists(st.text(max_size=5), max_size=30).map(
    lambda values: pd.Series(values, dtype=pd.StringDtype("pyarrow"))
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(numpy_columns, object_columns, arrow_text_columns), st.sampled_from(TYPE_LISTS))
def test_every_value_is_judged_as_ge_judges_it(column, type_list):
    assert verdicts(ge_type_list.register(), column, type_list) == verdicts(
        ColumnValuesInTypeList, column, type_list
    )


def test_a_text_column_is_of_one_type_and_a_subclass_beside_str_is_another():
    assert ge_type_list.of_one_type(pd.Series(["a", "b"], dtype=object))
    assert not ge_type_list.of_one_type(pd.Series(["a", Text("b")], dtype=object))


def test_an_arrow_backed_text_column_is_of_one_type():
    assert ge_type_list.of_one_type(pd.Series(["a", None], dtype=pd.StringDtype("pyarrow")))


def test_a_number_column_is_of_one_type_and_an_empty_or_extension_column_keeps_ge_s_way():
    assert ge_type_list.of_one_type(pd.Series([1.5, np.nan]))
    assert not ge_type_list.of_one_type(pd.Series([], dtype="float64"))
    assert not ge_type_list.of_one_type(pd.Series([1, None], dtype="Int64"))
    assert not ge_type_list.of_one_type(pd.Series(pd.to_datetime(["2026-01-01"], utc=True)))
