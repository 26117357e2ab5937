"""Duplicates within a chunk: a record is the duplicate only of one that can be published.

The chunk compares records last, after every check that judges a record on its own (row checks,
quality, device signatures), so a refused record owns no natural key: a glitch, a record with a
broken Kafka timestamp or a forgery never hides the valid report with the same key, and one
chunk publishes what the same records in separate batches would."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from pipelines.anonymize import PseudonymKey
from pipelines.graph import standardize_chunk
from pipelines.protect import Protection
from schemas.records import RAW_RECORD_SCHEMA

T0 = 1_764_000_000_000  # every report's event time: one node, one cell, one natural key
KEY = PseudonymKey(bytes(range(32)))


def report(dl_kbps: float, rsrp: float = -95.0, sinr: float = 12.0) -> bytes:
    """A radio report of node an-0007's cell 1234 at T0 (``dl_kbps`` tells reports apart)."""
    return json.dumps(
        {
            "format": "rda.node.v1",
            "kind": "radio_kpi",
            "node": "an-0007",
            "ts_ms": T0,
            "cell": {"eci": 1234, "pci": 7, "earfcn": 1300, "band": "B3"},
            "radio": {"rsrp": rsrp, "rsrq": -10.0, "sinr": sinr},
            "traffic": {"dl_kbps": dl_kbps, "ul_kbps": 500.0, "ues": 3, "prb_pct": 40.0},
        }
    ).encode()


# Each kind of record with the key, and the reason code it is quarantined with on its own.
GOOD = "good"
KINDS = {
    GOOD: None,
    "glitch": "implausible",  # SINR 25 dB at RSRP -130 dBm
    "bad kafka time": "bad_timestamp",  # a Kafka timestamp before 2000
    "broken": "invalid_json",  # cut short
}


def record(kind: str, n: int) -> tuple[bytes, int]:
    """(value, Kafka timestamp) of a record of ``kind``, the ``n``-th of the chunk."""
    if kind == "glitch":
        return report(2000.0 + n, rsrp=-130.0, sinr=25.0), T0
    if kind == "bad kafka time":
        return report(2000.0 + n), 0
    if kind == "broken":
        return b'{"format": "rda.node.v1", "kind": "radio_kpi", "node": "an-0007"', T0
    return report(2000.0 + n), T0


def chunk(kinds: list[str], first_offset: int = 100) -> pa.RecordBatch:
    records = [record(kind, n) for n, kind in enumerate(kinds)]
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["t"] * len(records),
            "partition": [0] * len(records),
            "offset": list(range(first_offset, first_offset + len(records))),
            "timestamp_ms": [t for _, t in records],
            "key": [b"an-0007"] * len(records),
            "value": [v for v, _ in records],
            "format": ["rda.node.v1"] * len(records),
            "signature": [None] * len(records),
        },
        schema=RAW_RECORD_SCHEMA,
    )


def staged(raw: pa.RecordBatch, tmp_path) -> tuple[list[int], dict[int, str]]:
    """(offsets of the records staged to publish, offset -> reason code of the quarantined)."""
    protection = Protection(str(tmp_path), staged_only=True, _key=KEY)
    result = standardize_chunk(raw, "rda.node.v1", protection)
    offsets = []
    if "radio_kpi.v1" in result.published:  # not when no record decodes
        rows = result.published["radio_kpi.v1"]
        passed = pc.is_null(rows.column("_quarantine"))
        offsets = rows.column("source_offset").filter(passed).to_pylist()
    q = result.quarantined
    codes = zip(q.column("offset").to_pylist(), q.column("reason_code").to_pylist(), strict=True)
    return offsets, dict(codes)


def test_the_corrected_report_after_a_glitch_is_published(tmp_path):
    assert staged(chunk(["glitch", GOOD]), tmp_path) == ([101], {100: "implausible"})


def test_a_report_after_one_with_a_broken_kafka_timestamp_is_published(tmp_path):
    assert staged(chunk(["bad kafka time", GOOD]), tmp_path) == ([101], {100: "bad_timestamp"})


def test_a_repeated_valid_report_is_the_duplicate_of_the_first(tmp_path):
    raw = chunk([GOOD, "glitch", GOOD])
    result = standardize_chunk(raw, "rda.node.v1", Protection(str(tmp_path), _key=KEY))
    assert result.published["radio_kpi.v1"].column("source_offset").to_pylist() == [100]
    assert result.quarantined.to_pydict()["reason"] == [
        "sinr_db=25 is impossible with rsrp_dbm below -120",
        "same natural key (node_id, cell_id, event_time) as offset 100",
    ]


def test_without_quality_checks_the_first_record_that_decodes_owns_the_key(tmp_path):
    result = standardize_chunk(chunk(["broken", "glitch", GOOD]), "rda.node.v1")
    assert result.published["radio_kpi.v1"].column("source_offset").to_pylist() == [101]
    assert result.quarantined.column("reason_code").to_pylist() == ["invalid_json", "duplicate"]


@given(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=12))
def test_the_first_record_that_passes_every_check_alone_is_published(tmp_path_factory, kinds):
    offsets, reasons = staged(chunk(kinds), tmp_path_factory.mktemp("keys"))
    goods = [100 + n for n, kind in enumerate(kinds) if kind == GOOD]
    assert offsets == goods[:1]
    expected = {100 + n: KINDS[kind] for n, kind in enumerate(kinds) if kind != GOOD}
    assert reasons == {**expected, **{o: "duplicate" for o in goods[1:]}}
