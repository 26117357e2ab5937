"""Text columns handed to Great Expectations as Arrow-backed pandas strings, judged as GE judges
the same values in an ``object`` column.

``Table.to_pandas`` makes each text column an ``object`` array of Python strings, and GE's
pandas engine asks pandas which values are null once per expectation on the column: a Python
look at every value each time (``isna`` on ``object``): a third of the CPU of a validation of
141,300 radio_kpi rows, half of one of 70,049 subscriber sessions. As ``string[pyarrow]`` the
column keeps Arrow's validity bitmap, and the same questions are answered from it.

GE picks how to judge ``expect_column_values_to_be_in_type_list`` by the column's dtype: value
by value for ``object`` columns, by the dtype's name for any other (a different result, without
counts). ``table.column_types``, replaced here for the pandas engine under GE's own metric name,
names an Arrow-backed text column's dtype as ``object``, the dtype the default conversion gives
the same values: GE then judges its values as before (``validators/ge_type_list.py`` takes every
value of such a column as ``str``, which it is), and the report is the same, byte for byte
(``tests/test_ge_between.py``).
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa

from validators.ge_registry import replace_provider


def frame(rows: pa.Table) -> Any:
    """``rows`` as the pandas frame GE validates: text columns as ``string[pyarrow]``."""
    import pandas as pd

    text = pd.StringDtype("pyarrow")
    mapping = {pa.string(): text, pa.large_string(): text}
    return rows.to_pandas(use_threads=False, types_mapper=mapping.get)


def is_arrow_text(dtype: Any) -> bool:
    """Whether ``dtype`` is the Arrow-backed text dtype ``frame`` gives text columns."""
    import pandas as pd

    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


@functools.cache
def register() -> type:
    """Register ``table.column_types`` as this module names the dtypes, once per process."""
    return replace_provider(_define)


def _define() -> type:
    import numpy as np
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.metrics.metric_provider import metric_value
    from great_expectations.expectations.metrics.table_metrics.table_column_types import (
        ColumnTypes,
    )

    as_ge_sees_text = np.dtype(object)

    class ColumnTypesOfTextAsObjects(ColumnTypes):
        metric_name = "table.column_types"

        @metric_value(engine=PandasExecutionEngine)
        def _pandas(
            cls,
            execution_engine: Any,
            metric_domain_kwargs: dict,
            metric_value_kwargs: dict,
            metrics: dict,
            runtime_configuration: dict,
        ) -> Any:
            from great_expectations.core.metric_domain_types import MetricDomainTypes

            df, _, _ = execution_engine.get_compute_domain(
                metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
            )
            return [
                {"name": name, "type": as_ge_sees_text if is_arrow_text(dtype) else dtype}
                for name, dtype in zip(df.columns, df.dtypes, strict=True)
            ]

    return ColumnTypesOfTextAsObjects
