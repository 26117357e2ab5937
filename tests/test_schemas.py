"""Canonical schemas: metadata on every field, a stable fingerprint, exact types after checks."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from proofs.jcs import canonicalize
from schemas.adapters.base import canonical_rows
from schemas.radio import RADIO_KPI_V1
from schemas.registry import SCHEMAS, get_schema


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


def test_conform_narrows_checked_rows_to_the_exact_canonical_types():
    micros = pa.array([1_764_000_000_000_000], pa.timestamp("us", tz="UTC"))
    columns = {
        "node_id": ["an-0001"],
        "event_time": micros,
        "cell_id": [5],
        "pci": [7],
        "rsrp_dbm": [-90.0],
        "connected_ues": [3],
        "source_topic": ["t"],
        "source_partition": [0],
        "source_offset": [9],
        "ingest_time": micros,
    }
    wide = canonical_rows(RADIO_KPI_V1, columns, 1)
    narrowed = RADIO_KPI_V1.conform(wide)
    assert wide.schema.field("pci").type == pa.int64()  # wide until checked
    assert narrowed.schema.equals(RADIO_KPI_V1.arrow_schema(), check_metadata=True)
    assert narrowed.column("earfcn").to_pylist() == [None]


def test_every_registered_schema_has_units_for_its_measurements_and_a_natural_key():
    for schema in SCHEMAS.values():
        names = {f.name for f in schema.all_fields}
        assert set(schema.natural_key) <= names, schema.name
        for f in schema.fields:
            if f.name.endswith(("_ms", "_mbps", "_pct", "_dbm", "_db")):
                assert f.unit, f"{schema.name}.{f.name} has no unit"


def test_subscriber_identifiers_are_classified_for_the_privacy_policy():
    session = get_schema("subscriber_session")
    privacy = {f.name: f.privacy.value for f in session.fields}
    assert privacy["imsi"] == privacy["msisdn"] == privacy["imei"] == "identifier"
    assert privacy["ue_ip"] == "network_address"


def test_unknown_schema_names_the_known_ones():
    with pytest.raises(KeyError, match="radio_kpi"):
        get_schema("nope")


def test_the_data_dictionary_in_docs_is_generated_from_the_schemas():
    from schemas.dictionary import DICTIONARY, render

    assert DICTIONARY.read_text() == render(), "run: python -m schemas.dictionary"
