"""GE's ``column_values.between`` on pandas, vectorized for every numeric width
(``validators/ge_between.py``): the same verdict per value as GE's own, the same report."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from great_expectations.expectations.metrics.column_map_metrics.column_values_between import (
    ColumnValuesBetween,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmarks.decode import raw_batch
from pipelines.protect import Protection
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.published import published_schema_for_dataset
from simulator.fleet import generate
from validators import ge_between
from validators.expectations import report_bytes, validate

START_MS = 1_764_000_000_000
DTYPES = ["int8", "int16", "int32", "int64", "uint16", "uint32", "float32", "float64"]


def verdicts(provider: type, column: pd.Series, **bounds) -> list[bool]:
    return list(inspect.unwrap(provider._pandas)(provider, column, **bounds))


@st.composite
def columns_and_bounds(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    values = draw(arrays(dtype, st.integers(0, 40), elements={"allow_nan": False}))
    edges = [*values.tolist()[:3], 0, -1, 0.5, 1e6, -(2**31)]
    bound = st.one_of(
        st.none(), st.sampled_from(edges), st.integers(-300, 300), st.floats(-1e9, 1e9)
    )
    low, high = draw(bound), draw(bound)
    if low is None and high is None:
        low = 0
    if low is not None and high is not None and low > high:
        low, high = high, low
    strict = {"strict_min": draw(st.booleans()), "strict_max": draw(st.booleans())}
    return pd.Series(values, dtype=dtype), {"min_value": low, "max_value": high, **strict}


@given(columns_and_bounds())
def test_every_value_is_judged_as_ge_judges_it_whatever_the_column_s_width(case):
    column, bounds = case
    assert verdicts(ge_between.register(), column, **bounds) == verdicts(
        ColumnValuesBetween, column, **bounds
    )


def test_a_text_column_keeps_ge_s_own_handling():
    column = pd.Series(["2026-01-01", "2027-05-01"], dtype=object)
    bounds = {"min_value": "2026-06-01", "max_value": "2028-01-01"}
    assert verdicts(ge_between.register(), column, **bounds) == [False, True]


# GE's own metric, in a process where nothing registered the vectorized one.
REPORT_WITH_GE_S_OWN = """
import sys
import pyarrow.parquet as pq
from schemas.published import published_schema_for_dataset
from validators import expectations, ge_between
ge_between.register = lambda: None
schema = published_schema_for_dataset(sys.argv[1])
report, _ = expectations.validate(schema, pq.read_table(sys.argv[2]))
sys.stdout.buffer.write(expectations.report_bytes(report))
"""


def heartbeats(private_dir: Path) -> pa.Table:
    """A simulated fleet's published node_heartbeat rows."""
    messages = [m for m in generate(6, 60, 1, START_MS, seed=3) if b"node_heartbeat" in m.value]
    raw = raw_batch([m.value for m in messages], "rda.node.v1")
    result = Protection(str(private_dir))(raw, standardize(raw, adapter_for("rda.node.v1")))
    return pa.Table.from_batches([result.published["node_heartbeat.v1"]])


def test_a_report_over_int32_columns_out_of_bounds_is_the_same_bytes_as_ge_s_own(tmp_path):
    schema = published_schema_for_dataset("node_heartbeat.v1")
    rows = heartbeats(tmp_path / "private")
    # An int32 column without nulls stays int32 in pandas: GE judged it value by value.
    sizes = [70_000 if i % 7 == 0 else 0 if i % 11 == 0 else 1 + i for i in range(rows.num_rows)]
    field = rows.schema.get_field_index("device_batch_size")
    rows = rows.set_column(field, "device_batch_size", pa.array(sizes, pa.int32()))
    path = tmp_path / "rows.parquet"
    pq.write_table(rows, path)
    ours, _ = validate(schema, rows)
    theirs = subprocess.run(
        [sys.executable, "-c", REPORT_WITH_GE_S_OWN, "node_heartbeat.v1", str(path)],
        capture_output=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    assert report_bytes(ours) == theirs
    failed = [r for r in ours["results"] if not r["success"]]
    assert [r["kwargs"]["column"] for r in failed] == ["device_batch_size"]
    outside = [size for size in sizes if not 1 <= size <= 65_535]
    assert failed[0]["result"]["unexpected_count"] == len(outside) > 0
