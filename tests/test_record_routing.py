"""Which adapter reads each record (``pipelines/standardize.py``), decided for a whole batch at
once: the same as reading the records one by one."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.standardize import _record_formats, standardize_routed
from schemas.adapters import sniff, wire_formats
from schemas.records import RAW_RECORD_SCHEMA

HEADERS = [None, "", "rda.node.v1", "ems.csv", "gnmi.json", "mlab.ndt7", "no.such.format"]
DEFAULTS = [None, "auto", "rda.node.v1", "ems.csv", "no.such.format"]
VALUES = [b'{"kind": "radio_kpi"}', b"not any format", b"node_id,ts\n", b"", b"{}", None]

records = st.lists(st.tuples(st.sampled_from(HEADERS), st.sampled_from(VALUES)), max_size=25)


def batch(pairs: list[tuple[str | None, bytes | None]]) -> pa.RecordBatch:
    n = len(pairs)
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["t"] * n,
            "partition": [0] * n,
            "offset": list(range(50, 50 + n)),
            "timestamp_ms": [1_764_000_000_000] * n,
            "key": [b"k"] * n,
            "value": [value for _, value in pairs],
            "format": [header for header, _ in pairs],
            "signature": [None] * n,
        },
        schema=RAW_RECORD_SCHEMA,
    )


def one_by_one(pairs, default: str | None, override: bool) -> list[str | None]:
    """The rule, a record at a time: a declared format at its word (unknown: none), else the
    topic's default, else a sniff; ``override``: the default for all, if an adapter reads it."""
    known = set(wire_formats())
    if override and default in known:
        return [default] * len(pairs)
    return [
        (header if header in known else None)
        if header is not None
        else (default if default in known else sniff(value))
        for header, value in pairs
    ]


@settings(max_examples=150, deadline=None)
@given(records, st.sampled_from(DEFAULTS), st.booleans())
def test_each_record_gets_the_format_reading_it_alone_gives(pairs, default, override):
    formats = _record_formats(batch(pairs), default, override)
    assert formats.type == pa.string()
    assert formats.to_pylist() == one_by_one(pairs, default, override)


@settings(max_examples=60, deadline=None)
@given(records, st.sampled_from(DEFAULTS), st.data())
def test_refused_and_unreadable_records_are_quarantined_with_their_reasons(pairs, default, data):
    raw = batch(pairs)
    offsets = raw.column("offset").to_pylist()
    refused_offsets = data.draw(st.sets(st.sampled_from(offsets or [0]))) if offsets else set()
    refused = {offset: ("poison", f"killed the worker at {offset}") for offset in refused_offsets}
    result = standardize_routed(raw, default, refused=refused)

    assert result.read == len(pairs) == result.published_records + result.quarantined.num_rows
    quarantined = dict(
        zip(
            result.quarantined.column("offset").to_pylist(),
            zip(
                result.quarantined.column("reason_code").to_pylist(),
                result.quarantined.column("reason").to_pylist(),
                strict=True,
            ),
            strict=True,
        )
    )
    for offset in refused:  # never parsed: quarantined with the driver's reason
        assert quarantined[offset] == refused[offset]
    formats = one_by_one(pairs, default, False)
    for offset, wire_format in zip(offsets, formats, strict=True):
        if wire_format is None and offset not in refused:
            assert quarantined[offset][0] == "unknown_format"
