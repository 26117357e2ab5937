"""``published/data-assets.json``: which datasets are tokens, and where, or a clear refusal.

A record that is there but cannot be read is not "nothing minted": taken for that, a minted
dataset's next checkpoint would be anchored without its asset and a new mint would record new
contracts over the old ones.
"""

from __future__ import annotations

import json

import pytest

from market.minting import deploy_contracts
from sinks.layout import DataLayout
from sinks.storage import Store
from streaming.assets import AssetRecord, AssetRecordDamaged, checkpoint_sections
from streaming.errors import SettingsError

RECORD = AssetRecord(
    chain_id=31337,
    registry="0x" + "11" * 20,
    data_asset="0x" + "22" * 20,
    data_licences="0x" + "33" * 20,
    stablecoin=None,
    tokens={"radio_kpi.v1": 7},
    node_registry="0x" + "44" * 20,
)


@pytest.fixture
def layout(tmp_path):
    return DataLayout(tmp_path / "data")


def damage(layout: DataLayout, data: bytes) -> None:
    path = AssetRecord.path(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_a_data_directory_without_a_record_has_nothing_minted(layout):
    assert AssetRecord.load(layout) is None


def test_a_saved_record_loads_as_it_was(layout):
    RECORD.save(layout)
    assert AssetRecord.load(layout) == RECORD


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"chain_id": 31337, "registry": "0x11', "Unterminated string"),  # cut short
        (b"{\x80}", "utf-8"),
        (b"[]", "not a JSON object"),
        (json.dumps({"chain_id": 1, "registry": "0x1"}).encode(), "data_asset"),  # missing
        (json.dumps({**RECORD.__dict__, "owner": "me"}).encode(), "owner"),  # unknown
        (json.dumps({**RECORD.__dict__, "chain_id": "31337"}).encode(), "chain_id"),
        (json.dumps({**RECORD.__dict__, "chain_id": True}).encode(), "chain_id"),
        (json.dumps({**RECORD.__dict__, "data_asset": None}).encode(), "data_asset"),
        (json.dumps({**RECORD.__dict__, "stablecoin": 5}).encode(), "stablecoin"),
        (json.dumps({**RECORD.__dict__, "tokens": {"radio_kpi.v1": "7"}}).encode(), "tokens"),
        (json.dumps({**RECORD.__dict__, "tokens": ["radio_kpi.v1"]}).encode(), "tokens"),
    ],
)
def test_a_record_that_cannot_be_read_is_refused_with_its_path(layout, data, reason):
    damage(layout, data)
    with pytest.raises(AssetRecordDamaged, match=reason) as refused:
        AssetRecord.load(layout)
    assert str(AssetRecord.path(layout)) in str(refused.value)
    assert isinstance(refused.value, SettingsError)  # `rda`: one line, exit 2


def test_a_checkpoint_is_not_built_without_its_asset_when_the_record_is_damaged(layout):
    damage(layout, b'{"chain_id": 31337, "tok')
    with pytest.raises(AssetRecordDamaged):
        checkpoint_sections(Store.open(layout.root), layout, "radio_kpi.v1", 0, 0, [])


def test_minting_never_records_new_contracts_over_a_damaged_record(layout):
    damage(layout, b'{"chain_id": 31337, "tok')
    with pytest.raises(AssetRecordDamaged):
        deploy_contracts(None, layout, RECORD.registry, RECORD.node_registry)
    assert AssetRecord.path(layout).read_bytes() == b'{"chain_id": 31337, "tok'
