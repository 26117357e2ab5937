"""Canonical schemas: metadata on every field, a stable fingerprint, exact types after checks."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from proofs.jcs import canonicalize
from schemas.radio import RADIO_KPI_V1
from schemas.registry import get_schema


def test_fingerprint_is_sha256_of_the_rfc8785_form_of_the_description():
    expected = hashlib.sha256(canonicalize(RADIO_KPI_V1.describe())).hexdigest()
    assert RADIO_KPI_V1.fingerprint() == expected


def test_every_field_carries_unit_range_and_privacy_metadata_in_arrow():
    field = RADIO_KPI_V1.arrow_schema().field("rsrp_dbm")
    metadata = {k.decode(): json.loads(v) for k, v in field.metadata.items()}
    assert metadata["unit"] == "dBm"
    assert (metadata["minimum"], metadata["maximum"]) == (-140, -43)
    assert metadata["privacy"] == "public"
    assert metadata["required"] is True


def test_dataset_id_names_the_major_version():
    assert RADIO_KPI_V1.dataset == "radio_kpi.v1"


def test_conform_casts_checked_rows_to_the_exact_canonical_types():
    row = {
        "node_id": "an-0001",
        "event_time": 1_764_000_000_000_000,
        "cell_id": 5,
        "pci": 7,
        "earfcn": 1850,
        "rsrp_dbm": -90.0,
        "rsrq_db": -10.0,
        "sinr_db": 5.0,
        "dl_throughput_mbps": 1.5,
        "ul_throughput_mbps": 0.5,
        "latency_ms": 20.0,
        "connected_ues": 3,
        "latitude": 1.0,
        "longitude": 2.0,
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 9,
        "ingest_time": 1_764_000_000_000_000,
    }
    wide = pa.RecordBatch.from_pylist([row])
    narrowed = RADIO_KPI_V1.conform(
        wide.set_column(
            1, "event_time", wide.column(1).cast(pa.timestamp("us", tz="UTC"))
        ).set_column(17, "ingest_time", wide.column(17).cast(pa.timestamp("us", tz="UTC")))
    )
    assert narrowed.schema.equals(RADIO_KPI_V1.arrow_schema(), check_metadata=True)


def test_unknown_schema_names_the_known_ones():
    with pytest.raises(KeyError, match="radio_kpi"):
        get_schema("nope")
