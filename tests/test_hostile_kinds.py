"""Every hostile kind, in the process: quarantined under its reason, one a person reads."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hostile_records import (
    BRACKETS_IN_A_STRING,
    KINDS,
    LONG_DIGITS_IN_A_FLOAT,
    NDT7_WITHOUT_A_HEADER,
    NODE,
    Kind,
)

from pipelines.standardize import standardize_routed
from schemas.records import RAW_RECORD_SCHEMA

UNREADABLE = ("at at", "<missing>", "set_int_max_str_digits", "Traceback", "Exception")


def batch(*records: tuple[str | None, bytes | None]) -> pa.RecordBatch:
    n = len(records)
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["t"] * n, "partition": [0] * n, "offset": list(range(n)),
            "timestamp_ms": [1_764_000_000_000] * n, "key": [b"k"] * n,
            "value": [v for _, v in records], "format": [h for h, _ in records],
        },
        schema=RAW_RECORD_SCHEMA,
    )  # fmt: skip


def readable(reason: str) -> bool:
    return 10 < len(reason) < 300 and not any(text in reason for text in UNREADABLE)


def test_there_are_at_least_thirty_kinds_each_named_once():
    assert len(KINDS) >= 30
    assert len({k.name for k in KINDS}) == len(KINDS)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_hostile_kind_is_quarantined_under_its_reason(kind: Kind):
    result = standardize_routed(batch((kind.header, kind.value)), "auto")
    (record,) = result.quarantined.to_pylist()
    assert (record["reason_code"], readable(record["reason"])) == (kind.code, True), record[
        "reason"
    ]


def test_all_kinds_in_one_batch_between_valid_records_are_quarantined_once_each():
    records = [(NODE, BRACKETS_IN_A_STRING), (NODE, LONG_DIGITS_IN_A_FLOAT)]
    records += [(None, NDT7_WITHOUT_A_HEADER)]
    records += [(k.header, k.value) for k in KINDS]
    result = standardize_routed(batch(*records), "auto")
    codes = result.quarantined.column("reason_code").to_pylist()
    assert codes == [k.code for k in KINDS]
    assert result.quarantined.column("offset").to_pylist() == list(range(3, len(records)))
    assert result.published_records == 3  # brackets inside a string are not nesting
