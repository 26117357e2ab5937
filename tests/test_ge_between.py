"""GE run faster, its report unchanged: ``column_values.between`` on pandas vectorized for every
numeric width (``validators/ge_between.py``), and pandas' copy-on-write while GE runs
(``validators/expectations.py``) — the same verdict per value as GE's own, the same report
bytes as GE's own way (with ``validators/ge_type_list.py`` too)."""

from __future__ import annotations

import inspect
import json
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
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from quality_support import protected

from benchmarks.decode import raw_batch
from pipelines.protect import Protection
from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.published import published_schema_for_dataset
from simulator.fleet import generate
from validators import ge_between
from validators.expectations import report_bytes, validate

START_MS = 1_764_000_000_000
DTYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
]


def verdicts(provider: type, column: pd.Series, **bounds) -> list[bool]:
    return list(inspect.unwrap(provider._pandas)(provider, column, **bounds))


@st.composite
def columns_and_bounds(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    values = draw(arrays(dtype, st.integers(0, 40), elements={"allow_nan": False}))
    # Bounds at and beside the values (where a narrow float rounds), and decimal ones.
    with np.errstate(over="ignore"):  # beside the largest double is infinity: a bound too
        near = [np.nextafter(float(v), d) for v in values.tolist()[:3] for d in (-np.inf, np.inf)]
    edges = [*values.tolist()[:3], *near, 0, -1, 0.1, 1 / 3, 0.5, 1e6, -(2**31), 2**63]
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


@settings(max_examples=400)
@given(columns_and_bounds())
def test_every_value_is_judged_as_ge_judges_it_whatever_the_column_s_width(case):
    column, bounds = case
    assert verdicts(ge_between.register(), column, **bounds) == verdicts(
        ColumnValuesBetween, column, **bounds
    )


def test_a_float32_value_is_compared_exactly_not_with_the_bound_rounded_to_float32():
    column = pd.Series([0.1, 0.25], dtype="float32")  # float32(0.1) = 0.10000000149…
    for provider in (ge_between.register(), ColumnValuesBetween):
        assert verdicts(provider, column, min_value=0.0, max_value=0.1) == [False, False]
        assert verdicts(provider, column, min_value=0.0, max_value=0.25) == [True, True]


def test_a_text_column_keeps_ge_s_own_handling():
    column = pd.Series(["2026-01-01", "2027-05-01"], dtype=object)
    bounds = {"min_value": "2026-06-01", "max_value": "2028-01-01"}
    assert verdicts(ge_between.register(), column, **bounds) == [False, True]


# GE's own way, in a process where nothing registered the faster metrics, text columns are
# objects and pandas copies frames as it does by default: the report of each (dataset, rows'
# Parquet file) given, as a JSON list of their texts.
REPORTS_WITH_GE_S_OWN = """
import contextlib, json, sys
import pyarrow.parquet as pq
from schemas.published import published_schema_for_dataset
from validators import expectations, ge_between, ge_text, ge_type_list
ge_between.register = ge_type_list.register = ge_text.register = lambda: None
ge_text.frame = lambda rows: rows.to_pandas()
expectations._pandas_options = contextlib.nullcontext
reports = []
for dataset, path in zip(sys.argv[1::2], sys.argv[2::2]):
    schema = published_schema_for_dataset(dataset)
    report, _ = expectations.validate(schema, pq.read_table(path))
    reports.append(expectations.report_bytes(report).decode())
print(json.dumps(reports))
"""


def reports_with_ge_s_own(tables: dict[str, pa.Table], folder: Path) -> list[bytes]:
    """Each dataset's report on its rows, as GE's own way makes it (``REPORTS_WITH_GE_S_OWN``)."""
    arguments = []
    for dataset, rows in tables.items():
        pq.write_table(rows, folder / f"{dataset}.parquet")
        arguments += [dataset, str(folder / f"{dataset}.parquet")]
    reports = subprocess.run(
        [sys.executable, "-c", REPORTS_WITH_GE_S_OWN, *arguments],
        capture_output=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    return [report.encode() for report in json.loads(reports)]


def heartbeats(private_dir: Path) -> pa.Table:
    """A simulated fleet's published node_heartbeat rows."""
    messages = [m for m in generate(6, 60, 1, START_MS, seed=3) if b"node_heartbeat" in m.value]
    raw = raw_batch([m.value for m in messages], "rda.node.v1")
    result = Protection(str(private_dir))(raw, standardize(raw, adapter_for("rda.node.v1")))
    return pa.Table.from_batches([result.published["node_heartbeat.v1"]])


def with_column(rows: pa.Table, name: str, values: list, type_: pa.DataType) -> pa.Table:
    return rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, type_))


def test_a_report_with_failures_of_every_kind_is_the_same_bytes_as_ge_s_own(tmp_path):
    schema = published_schema_for_dataset("node_heartbeat.v1")
    rows = heartbeats(tmp_path / "private")
    n = rows.num_rows
    # An int32 column without nulls stays int32 in pandas: GE judged it value by value.
    sizes = [70_000 if i % 7 == 0 else 0 if i % 11 == 0 else 1 + i for i in range(n)]
    rows = with_column(rows, "device_batch_size", sizes, pa.int32())
    # Nulls (rows GE filters out, a real copy) and values out of bounds in a float column.
    battery = [None if i % 5 == 0 else 101.5 if i % 13 == 0 else 50.0 for i in range(n)]
    rows = with_column(rows, "battery_pct", battery, pa.float64())
    status = ["rebooting" if i % 17 == 0 else "online" for i in range(n)]
    rows = with_column(rows, "status", status, pa.string())
    # Text columns (Arrow-backed for GE, object columns in GE's own way): nulls in a required
    # one, nulls and values outside the set in an optional one.
    nodes = [None if i % 19 == 0 else node for i, node in enumerate(rows["node_id"].to_pylist())]
    rows = with_column(rows, "node_id", nodes, pa.string())
    power = [None if i % 3 == 0 else "wind" if i % 23 == 0 else "grid" for i in range(n)]
    rows = with_column(rows, "power_source", power, pa.string())
    rows = pa.concat_tables([rows, rows.slice(0, 3)])  # three natural keys twice
    ours, _ = validate(schema, rows)
    assert [report_bytes(ours)] == reports_with_ge_s_own({"node_heartbeat.v1": rows}, tmp_path)
    failed = {
        (r["expectation"], r["kwargs"].get("column")): r["result"]["unexpected_count"]
        for r in ours["results"]
        if not r["success"]
    }
    sizes, battery, status = sizes + sizes[:3], battery + battery[:3], status + status[:3]
    nodes, power = nodes + nodes[:3], power + power[:3]
    assert failed == {
        ("expect_column_values_to_be_between", "device_batch_size"): sum(
            not 1 <= size <= 65_535 for size in sizes
        ),
        ("expect_column_values_to_be_between", "battery_pct"): sum(
            pct is not None and not 0 <= pct <= 100 for pct in battery
        ),
        ("expect_column_values_to_be_in_set", "status"): status.count("rebooting"),
        ("expect_column_values_to_not_be_null", "node_id"): nodes.count(None),
        ("expect_column_values_to_be_in_set", "power_source"): power.count("wind"),
        ("expect_compound_columns_to_be_unique", None): 6,
    }


def test_every_published_dataset_s_report_with_failing_rows_is_the_same_bytes_as_ge_s_own(
    tmp_path,
):
    """Each text column Arrow-backed for GE (``validators/ge_text.py``) and every other shortcut,
    against GE's own way: the fleet's datasets, each with nulls in every text column in turn
    and natural keys twice."""
    messages = list(generate(3, 5, 1, START_MS, seed=2, sessions=True))
    published = protected(messages, tmp_path / "private").published
    assert len(published) >= 3
    tables = {}
    for dataset, batch in sorted(published.items()):
        rows = pa.Table.from_batches([batch])
        texts = [f.name for f in rows.schema if pa.types.is_string(f.type)]
        for row, name in enumerate(texts):  # row i's value of one text column null
            values = rows[name].to_pylist()
            values[row % rows.num_rows] = None
            rows = with_column(rows, name, values, pa.string())
        tables[dataset] = pa.concat_tables([rows, rows.slice(0, 2)])
    ours = [
        report_bytes(validate(published_schema_for_dataset(dataset), rows)[0])
        for dataset, rows in tables.items()
    ]
    assert ours == reports_with_ge_s_own(tables, tmp_path)
    assert not any(json.loads(report)["success"] for report in ours)
