"""Great Expectations' ``column_values.between`` on pandas, vectorized for every numeric dtype.

GE 1.x compares a column with its bounds in one vectorized step only when the column's dtype is
``int`` or ``float`` (int64, float64); any other numeric dtype — the int32 columns of the published
schemas — goes through a Python function per value: a sixth of GE's time over a checkpoint of
141,300 radio_kpi rows. Registered here for the pandas engine
under GE's own metric name, the condition takes GE's own vectorized path for every integer and
floating dtype narrower than 64 bits — widened first, exactly, as GE's function per value
compares them — and GE's original for the rest: the same rows pass, so the report (which
records the expectation, its bounds and the values outside them) is the same, byte for byte.

GE registers a metric provider when its class is defined: importing this module registers it
(``register``). Nulls never reach the condition (GE filters them first), so NaN is no case here.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from validators.ge_registry import replace_provider


@functools.cache
def register() -> type:
    """Register the vectorized condition with GE's metric registry, once per process; its
    metric provider class."""
    return replace_provider(_define)


def _define() -> type:
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.metrics.column_map_metrics.column_values_between import (
        ColumnValuesBetween,
    )
    from great_expectations.expectations.metrics.map_metric_provider import (
        column_condition_partial,
    )

    original = inspect.unwrap(ColumnValuesBetween._pandas)  # GE's, undecorated

    class NumericColumnValuesBetween(ColumnValuesBetween):
        condition_metric_name = "column_values.between"

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: Any, **kwargs: Any) -> Any:
            widened = _widened(column)
            if widened is None or not _numeric_bounds(kwargs):
                return original(cls, column, **kwargs)
            _check_bounds(kwargs.get("min_value"), kwargs.get("max_value"))
            return cls._pandas_vectorized(
                widened,
                kwargs.get("min_value"),
                kwargs.get("max_value"),
                kwargs.get("strict_min"),
                kwargs.get("strict_max"),
            )

    return NumericColumnValuesBetween


def _widened(column: Any) -> Any:
    """The column as int64 or float64, exactly, when it is a narrower integer or float; None
    otherwise. GE's function per value compares Python numbers, i.e. the values widened: a
    float32 column compared as float32 would round the bound to float32 too (0.1 would pass a
    maximum of 0.1). uint64 has no exact int64 or float64: it keeps GE's own way."""
    kind, size = column.dtype.kind, column.dtype.itemsize
    if kind == "f" and size < 8:
        return column.astype("float64")
    if kind in "iu" and size < 8:
        return column.astype("int64")
    return None


def _numeric_bounds(kwargs: dict[str, Any]) -> bool:
    """Both bounds numbers or None (a string or date bound keeps GE's own handling)."""
    bounds = (kwargs.get("min_value"), kwargs.get("max_value"))
    return all(
        b is None or (isinstance(b, (int, float)) and not isinstance(b, bool)) for b in bounds
    )


def _check_bounds(min_value: float | None, max_value: float | None) -> None:
    """GE's own checks of the bounds, with its messages."""
    if min_value is None and max_value is None:
        raise ValueError("min_value and max_value cannot both be None")
    if min_value is not None and max_value is not None and min_value > max_value:
        raise ValueError("min_value cannot be greater than max_value")
