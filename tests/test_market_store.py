"""Buyers, API keys and entitlements in the marketplace's own DuckDB file."""

from __future__ import annotations

import duckdb
import pytest

from market.store import KEY_PREFIX, MarketError, MarketStore, Terms, hash_key


@pytest.fixture
def store(tmp_path) -> MarketStore:
    return MarketStore(tmp_path / "private" / "market.duckdb")


def test_an_api_key_is_random_and_stored_only_as_its_hash(store):
    key = store.add_buyer("acme")
    other = MarketStore(store.path.parent / "other.duckdb").add_buyer("acme")
    assert key.startswith(KEY_PREFIX) and len(key) >= len(KEY_PREFIX) + 43  # 256 bits
    assert key != other
    assert key.encode() not in store.path.read_bytes()
    with duckdb.connect(str(store.path), read_only=True) as con:
        stored = con.execute("SELECT key_sha256, key_hint FROM buyers").fetchall()
    assert stored == [(hash_key(key), key[:9] + "…")]


def test_a_key_resolves_to_its_buyer_and_licences(store):
    key = store.add_buyer("acme")
    store.grant("acme", "radio_kpi.v1")
    buyer = store.snapshot().buyer_for_key(key)
    assert buyer.name == "acme" and buyer.datasets == frozenset({"radio_kpi.v1"})
    assert store.snapshot().buyer_for_key(key + "x") is None


def test_grant_and_revoke_report_whether_anything_changed(store):
    store.add_buyer("acme")
    assert store.grant("acme", "radio_kpi.v1") is True
    assert store.grant("acme", "radio_kpi.v1") is False
    assert store.buyers()[0]["datasets"] == ["radio_kpi.v1"]
    assert store.revoke("acme", "radio_kpi.v1") is True
    assert store.revoke("acme", "radio_kpi.v1") is False
    assert store.buyers()[0]["datasets"] == []


@pytest.mark.parametrize("name", ["", "-dash-first", "has space", "x" * 65, "semi;colon", "ü"])
def test_buyer_names_are_plain_identifiers(store, name):
    with pytest.raises(MarketError, match="buyer name"):
        store.add_buyer(name)


def test_a_buyer_is_created_once(store):
    store.add_buyer("acme")
    with pytest.raises(MarketError, match="already exists"):
        store.add_buyer("acme")


def test_granting_to_an_unknown_buyer_is_refused(store):
    store.add_buyer("acme")
    with pytest.raises(MarketError, match="no buyer named 'bob'"):
        store.grant("bob", "radio_kpi.v1")


def test_names_that_look_like_sql_are_only_data(store):
    store.add_buyer("x.y_z-1")
    store.grant("x.y_z-1", "radio'); DROP TABLE buyers; --")
    assert store.buyers()[0]["datasets"] == ["radio'); DROP TABLE buyers; --"]


def test_terms_default_and_update_field_by_field(store):
    assert store.snapshot().terms_for("radio_kpi.v1") == Terms()
    store.set_terms("radio_kpi.v1", None, 49.5, None)
    store.set_terms("radio_kpi.v1", "CC-BY-NC-4.0", None, "Radio KPIs")
    assert store.snapshot().terms_for("radio_kpi.v1") == Terms("CC-BY-NC-4.0", 49.5, "Radio KPIs")
    with pytest.raises(MarketError, match="negative"):
        store.set_terms("radio_kpi.v1", None, -1, None)
