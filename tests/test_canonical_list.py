"""A list that carries its canonical text: the manifest bytes are those of the plain list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proofs.jcs import CanonicalList, canonicalize
from proofs.manifest import build_manifest
from schemas.published import published_schema_for_dataset
from schemas.radio import RADIO_KPI_V1
from tests.test_jcs import json_values

items = st.lists(json_values, max_size=6)


@given(first=items, second=items, third=items)
def test_a_list_extended_twice_canonicalizes_as_the_plain_list(first, second, third) -> None:
    grown = CanonicalList.extended(CanonicalList.extended(first, second), third)
    assert canonicalize({"files": grown, "n": 1}) == canonicalize(
        {"files": first + second + third, "n": 1}
    )


def test_a_canonical_list_changed_after_its_text_was_made_is_refused() -> None:
    grown = CanonicalList.extended([{"a": 1}], [{"b": 2}])
    grown.append({"c": 3})
    with pytest.raises(ValueError, match="changed after its text was made"):
        canonicalize({"files": grown})


def manifest(files: list[dict], schema, before: list | None = None) -> dict:
    return build_manifest(
        dataset="radio_kpi.v1",
        tree_size=sum(f["rows"] for f in files),
        root=b"\x00" * 32,
        schema=schema.describe(),
        fingerprint=schema.fingerprint(),
        files=files,
        batch={"id": len(files)},
        previous=None,
        pipeline_version="test",
        resources_before=before,
    )


def entry(number: int) -> dict:
    path = f"shards/t.p0/data/{number:06d}.parquet"
    return {"path": path, "sha256": f"{number:064x}", "bytes": 100 + number, "rows": 2}


def test_resources_grown_from_the_last_checkpoint_s_are_the_bytes_of_resources_made_anew():
    schema = published_schema_for_dataset("radio_kpi.v1")
    files = [entry(n) for n in range(5)]
    earlier = manifest(files[:3], schema)
    grown = manifest(files, schema, earlier["resources"])
    assert isinstance(grown["resources"], CanonicalList)
    assert canonicalize(grown) == canonicalize(manifest(files, schema))


def test_resources_of_another_table_schema_are_made_anew_for_every_file():
    import dataclasses

    older = dataclasses.replace(RADIO_KPI_V1, minor=0, fields=RADIO_KPI_V1.fields[:-2])
    files = [entry(n) for n in range(4)]
    earlier = manifest(files[:2], older)
    grown = manifest(files, RADIO_KPI_V1, earlier["resources"])
    assert canonicalize(grown) == canonicalize(manifest(files, RADIO_KPI_V1))


def test_resources_of_other_files_are_refused():
    schema = published_schema_for_dataset("radio_kpi.v1")
    earlier = manifest([entry(7)], schema)
    with pytest.raises(ValueError, match="not those of the first files"):
        manifest([entry(1), entry(2)], schema, earlier["resources"])
