"""Bounded parsing: the measures taken before any parser runs, and the guard around adapters."""

from __future__ import annotations

import json
import sys

import pyarrow as pa
from adapter_inputs import json_values, raw
from hypothesis import given
from hypothesis import strategies as st

from pipelines.standardize import standardize
from schemas.adapters import adapter_for
from schemas.adapters.base import DecodeResult
from schemas.adapters.bounds import (
    MAX_DEPTH,
    SAFE_RECURSION_LIMIT,
    nesting_depth,
    out_of_bounds,
)
from schemas.adapters.guard import GuardedAdapter


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(json_values, st.integers(0, 80))
def test_the_measured_depth_is_the_parser_s_depth(value, wrap):
    for _ in range(wrap):
        value = [value] if wrap % 2 else {"k]{": value}  # brackets in keys do not count
    text = json.dumps(value).encode()
    assert nesting_depth(text) == depth_of(value)
    refused = out_of_bounds(pa.array([text], pa.binary()), nested=True)
    assert bool(refused) == (depth_of(value) > MAX_DEPTH)


@given(st.text(alphabet='[]{}"\\\\ab', max_size=60))
def test_any_bracket_soup_is_measured_without_error(text):
    assert nesting_depth(text.encode()) >= 0


def test_digit_runs_are_found_wherever_they_sit_in_a_batch():
    run = b"7" * 401
    values = [b"x" * n + run + b"y" * m for n in (0, 1, 99, 250) for m in (0, 3)]
    values += [b"1" * 400, b"2" * 400 + b"," + b"3" * 400]  # at the limit: allowed
    refused = out_of_bounds(pa.array(values, pa.binary()), nested=False)
    assert [p for p, code, _ in refused if code == "number_too_long"] == list(range(8))


def test_the_recursion_limit_web3_raises_is_put_back_before_decoding():
    import py_ecc  # noqa: F401 - raises the limit to 100,000 at import, once

    sys.setrecursionlimit(100_000)  # as after that import
    adapter_for("rda.node.v1").decode(raw(b"{}", wire_format="rda.node.v1"))
    assert sys.getrecursionlimit() == SAFE_RECURSION_LIMIT


class RaisesOnSeven:
    """An adapter with a bug: it raises on any batch holding the value b"7"."""

    wire_format = "test.buggy"
    schemas = ()

    def decode(self, batch: pa.RecordBatch) -> DecodeResult:
        if b"7" in batch.column("value").to_pylist():
            raise ZeroDivisionError("division by zero in the vendor's checksum")
        return DecodeResult(
            rejected_index=pa.array(range(batch.num_rows), pa.int64()),
            reject_codes=pa.array(["no_measurement"] * batch.num_rows),
            reject_reasons=pa.array(["nothing here"] * batch.num_rows),
        )


def test_an_adapter_that_raises_quarantines_only_the_records_that_make_it_raise():
    guarded = GuardedAdapter(RaisesOnSeven(), nested=True)
    result = standardize(raw(b"1", b"7", b"3", b"7", b"5"), guarded)
    codes = dict(zip(*(result.quarantined.column(c).to_pylist() for c in ("offset", "reason_code")),
                     strict=True))  # fmt: skip
    assert codes == {100: "no_measurement", 101: "adapter_error", 102: "no_measurement",
                     103: "adapter_error", 104: "no_measurement"}  # fmt: skip
    (reason,) = set(result.quarantined.filter(
        pa.compute.equal(result.quarantined.column("reason_code"), "adapter_error")
    ).column("reason").to_pylist())  # fmt: skip
    assert reason == (
        "the test.buggy adapter failed on this record "
        "(ZeroDivisionError: division by zero in the vendor's checksum)"
    )
