"""Great Expectations' ``column_values.in_type_list`` on pandas, judged once for a column of
one type.

GE 1.x judges the condition with a Python function per value (``column.map(lambda x:
isinstance(x, types))``): for every column of every published schema, a tenth or more of GE's
time over a checkpoint of 141,300 radio_kpi rows. The verdict depends on the value's type only,
and a published column's values all have one type: pandas hands ``map`` every value of a numpy
number column as one Python type (``astype(object)``), and a text column read from Arrow holds
``str`` objects (nulls never reach the condition: GE filters them first). Registered here for
the pandas engine under GE's own metric name, the condition asks GE's own function about the
column's first value when every value is of that value's type, and repeats its verdict (an
Arrow-backed text column, as GE gets text: ``validators/ge_text.py``, holds ``str`` values
only); any other column (values of several types, another extension dtype, no values) keeps
GE's own way. The same rows pass (``tests/test_ge_type_list.py``), so the report is the same,
byte for byte (``tests/test_ge_between.py``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from validators.ge_registry import replace_provider

# numpy kinds whose values ``map`` hands over all as one Python type (bool, int, uint, float).
_ONE_TYPE_KINDS = "biuf"


@functools.cache
def register() -> type:
    """Register the condition with GE's metric registry, once per process; its metric provider
    class."""
    return replace_provider(_define)


def _define() -> type:
    import pandas as pd
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.metrics.column_map_metrics.column_values_in_type_list import (  # noqa: E501
        ColumnValuesInTypeList,
    )
    from great_expectations.expectations.metrics.map_metric_provider import (
        column_condition_partial,
    )

    original = inspect.unwrap(ColumnValuesInTypeList._pandas)  # GE's, undecorated

    class OneTypeColumnValuesInTypeList(ColumnValuesInTypeList):
        condition_metric_name = "column_values.in_type_list"
        condition_value_keys = ("type_list",)

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: Any, type_list: Any, **kwargs: Any) -> Any:
            if not of_one_type(column):
                return original(cls, column, type_list, **kwargs)
            first = original(cls, column.iloc[:1], type_list, **kwargs)
            return pd.Series(bool(first.iloc[0]), index=column.index, name=column.name)

    return OneTypeColumnValuesInTypeList


def of_one_type(column: Any) -> bool:
    """Whether ``column.map`` hands every value over as one Python type (and there is one)."""
    import numpy as np

    from validators.ge_text import is_arrow_text

    if len(column) and is_arrow_text(column.dtype):
        return True  # every value ``map`` hands over of an Arrow-backed text column is a str
    if not len(column) or not isinstance(column.dtype, np.dtype):
        return False
    if column.dtype.kind in _ONE_TYPE_KINDS:
        return True
    if column.dtype.kind != "O":
        return False
    return len(set(map(type, column.to_numpy()))) == 1
