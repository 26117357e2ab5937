"""Listings and their exports (Frictionless Data Package, MLCommons Croissant), computed from
what the pipeline published and anchored."""

from __future__ import annotations

import dataclasses
import json

import duckdb
import h3
import pyarrow.parquet as pq
import pytest

from market.assets import load_assets, read_quality_report
from market.export import croissant, data_package
from market.listings import H3_RESOLUTION, build_listing
from market.store import Terms
from sinks.catalog import open_catalog

TERMS = Terms("CC-BY-4.0", 25.0, "Radio KPIs")


@pytest.fixture(scope="module")
def asset(demo_dir):
    return load_assets(demo_dir)["radio_kpi.v1"]


@pytest.fixture(scope="module")
def listing(asset):
    return build_listing(asset, TERMS)


def _scalar(sql: str, files) -> object:
    return duckdb.execute(sql, [[str(f) for f in files]]).fetchone()[0]


def test_assets_are_the_latest_anchored_checkpoints(demo_dir):
    with open_catalog(demo_dir) as catalog:
        latest = {c["dataset"]: c for c in catalog.checkpoints()}  # ordered by tree size
    assets = load_assets(demo_dir)
    assert set(assets) == set(latest)
    for dataset, asset in assets.items():
        assert asset.checkpoint.tree_size == latest[dataset]["tree_size"]
        assert asset.checkpoint.root == latest[dataset]["root"]
        assert asset.checkpoint.anchor_tx == latest[dataset]["anchor_tx"]
        assert sum(pq.ParquetFile(f).metadata.num_rows for f in asset.files) == (
            asset.checkpoint.tree_size
        )


def test_listing_has_schema_with_units_rows_terms_and_anchor(listing, asset):
    fields = {f["name"]: f for f in listing["schema"]["fields"]}
    assert fields["rsrp_dbm"]["unit"] == "dBm"
    assert (fields["rsrp_dbm"]["minimum"], fields["rsrp_dbm"]["maximum"]) == (-140, -43)
    assert listing["rows"] == asset.checkpoint.tree_size
    assert (listing["license"], listing["price_usd"], listing["title"]) == (
        "CC-BY-4.0",
        25.0,
        "Radio KPIs",
    )
    assert listing["checkpoint"]["anchor_tx"] == asset.checkpoint.anchor_tx
    quality = listing["quality"]  # the pipeline's quality section, passed through
    assert quality["report_path"].startswith("quality/") and 0 <= quality["score"] <= 100


def test_coverage_matches_the_published_rows(listing, asset):
    cov = listing["coverage"]
    assert cov["nodes"] == _scalar(
        "SELECT count(DISTINCT node_id) FROM read_parquet(?)", asset.files
    )
    start = _scalar("SELECT min(event_time) FROM read_parquet(?)", asset.files)
    assert cov["time_start"] == start.isoformat()
    located = _scalar(
        "SELECT count(*) FROM read_parquet(?) WHERE latitude IS NOT NULL", asset.files
    )
    assert sum(c["rows"] for c in cov["h3_cells"]) == located
    for cell in cov["h3_cells"]:
        assert h3.is_valid_cell(cell["cell"])
        assert h3.get_resolution(cell["cell"]) == H3_RESOLUTION


def test_a_quality_section_and_its_report_are_shown(asset, tmp_path):
    report = {"success": True, "statistics": {"evaluated_expectations": 12}}
    dataset_dir = tmp_path / "radio_kpi.v1"
    (dataset_dir / "quality").mkdir(parents=True)
    (dataset_dir / "quality" / "000000000042.validation.json").write_text(json.dumps(report))
    section = {
        "report_path": "quality/000000000042.validation.json",
        "report_sha256": "ab" * 32,
        "score": 0.97,
        "expectations": {"evaluated": 12, "successful": 12, "success": True},
    }
    with_quality = dataclasses.replace(
        asset, quality=section, manifest_path=dataset_dir / "checkpoints" / "x.manifest.json"
    )
    assert build_listing(with_quality, TERMS)["quality"] == section
    assert read_quality_report(with_quality) == report
    assert read_quality_report(asset)["suite"] == "radio_kpi.v1"  # the pipeline's GE report


def test_data_package_points_at_the_anchored_files(listing, asset):
    package = data_package(asset, TERMS, listing)
    (resource,) = package["resources"]
    base = asset.manifest_path.parent.parent
    assert [str((base / p).resolve()) for p in resource["path"]] == [str(f) for f in asset.files]
    assert resource["format"] == "parquet"
    assert package["licenses"] == [{"name": "CC-BY-4.0"}]
    fields = {f["name"]: f for f in resource["schema"]["fields"]}
    assert fields["rsrp_dbm"]["type"] == "number" and fields["rsrp_dbm"]["unit"] == "dBm"
    assert fields["event_time"]["type"] == "datetime"
    assert fields["cell_id"]["type"] == "integer"
    assert fields["rsrp_dbm"]["constraints"] == {"required": True, "minimum": -140, "maximum": -43}
    assert package["rda:checkpoint"]["root"] == asset.checkpoint.root
    columns = pq.read_schema(asset.files[0]).names
    assert [f["name"] for f in resource["schema"]["fields"]] == columns


def test_croissant_describes_every_column_of_the_files(listing, asset):
    doc = croissant(asset, TERMS, listing)
    assert doc["@type"] == "sc:Dataset"
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    (file_set,) = doc["distribution"]
    assert file_set["@type"] == "cr:FileSet"
    assert file_set["encodingFormat"] == "application/vnd.apache.parquet"
    (record_set,) = doc["recordSet"]
    fields = {f["name"]: f for f in record_set["field"]}
    assert list(fields) == pq.read_schema(asset.files[0]).names
    assert fields["rsrp_dbm"]["dataType"] == "sc:Float"
    assert "(unit: dBm)" in fields["rsrp_dbm"]["description"]
    assert fields["rsrp_dbm"]["source"] == {
        "fileSet": {"@id": file_set["@id"]},
        "extract": {"column": "rsrp_dbm"},
    }
    assert doc["rda:checkpoint"]["anchor_tx"] == asset.checkpoint.anchor_tx


def test_the_map_reference_layer_is_natural_earth_from_its_pinned_package():
    from market.reference import PACKAGE, land_layer

    layer = json.loads(land_layer())
    assert layer["source"].startswith("Natural Earth") and PACKAGE in layer["source"]
    assert len(layer["land"]) > 1000 and len(layer["borders"]) > 100
    points = [p for ring in layer["land"] for p in ring]
    assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for lon, lat in points)
    assert all(ring[0] == ring[-1] for ring in layer["land"])  # closed rings
