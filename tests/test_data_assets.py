"""Data assets end to end on the in-process EVM: mint, offer, sign in, buy, query, expire, claim.

The pipeline's own output (the session's demo data directory, with its contribution tables)
is anchored on a fresh in-process chain; the contracts, transactions and events are real.
"""

from __future__ import annotations

import json

import pytest
from asset_support import (
    DATASET,
    NODE_SHARE_BPS,
    account_key,
    advance_time,
    build_world,
    offer_in_dollars,
    sign_in,
)

from market.policy import QueryRefused
from proofs.contribution_audit import verify_contribution
from proofs.contributions import ContributionTable, parse_table
from proofs.data_asset import ContractRefused, DataAsset
from sinks.layout import DataLayout
from streaming.chain import open_chain

BUYER = 1  # eth-tester account indexes
OWNERS = [5, 6, 7]
DAY = 86_400


@pytest.fixture(scope="module")
def world(demo_dir, tmp_path_factory):
    chain = open_chain("embedded", None, None)
    accounts = chain.registry.w3.eth.accounts
    return build_world(
        chain, demo_dir, tmp_path_factory.mktemp("assets"), [accounts[i] for i in OWNERS]
    )


def test_the_token_commits_to_the_anchored_manifest_terms_and_contribution_table(world):
    layout = DataLayout(world.data_dir)
    asset = DataAsset(world.w3, world.record.data_asset)
    info = asset.info(world.minted.token_id)
    anchor = world.chain.registry.latest(DATASET)
    terms = (layout.dataset_dir(DATASET) / "asset-terms.json").read_bytes()
    assert (info.owner, info.registry) == (world.publisher, world.chain.contract)
    assert info.manifest_hash == anchor.manifest_hash
    assert info.terms_hash.hex() == __import__("hashlib").sha256(terms).hexdigest()
    assert json.loads(terms)["node_share_bps"] == NODE_SHARE_BPS == info.node_share_bps
    committed = asset.checkpoint(world.minted.token_id, anchor.tree_size)
    table = world.minted.table
    assert (committed.contribution_root, committed.node_rows) == (table.root(), table.node_rows)
    assert table.node_rows == anchor.tree_size  # every radio KPI row names its node


def test_the_pipeline_committed_a_table_per_checkpoint_in_the_manifest(world):
    checkpoints = sorted(
        (DataLayout(world.data_dir).dataset_dir(DATASET) / "checkpoints").glob("*.manifest.json")
    )
    assert len(checkpoints) == 2
    for path in checkpoints:
        manifest = json.loads(path.read_bytes())
        section = manifest["contributions"]
        table = parse_table((path.parent.parent / section["path"]).read_bytes())
        assert table.root().hex() == section["root"]
        assert table.tree_size == manifest["checkpoint"]["tree_size"] == section["node_rows"]


def test_buyer_signs_in_buys_queries_and_loses_access_at_expiry_without_an_admin_step(world):
    market = world.marketplace()
    buyer_address = world.w3.eth.accounts[BUYER]
    signed = sign_in(market, account_key(BUYER))
    key = signed["api_key"]
    assert signed["wallet"] == buyer_address
    assert market.authenticate(key).datasets == frozenset()
    with pytest.raises(QueryRefused) as refused:
        market.query(market.authenticate(key), "SELECT count(*) AS n FROM radio_kpi_v1")
    assert refused.value.code == "table_not_allowed"

    offer = offer_in_dollars(world, "12.50", DAY)
    world.coin.send("mint", buyer_address, 100_000_000)
    bought = world.licences.as_sender(buyer_address).buy(offer)
    market.chain.sync.sync()  # what the server's sync thread does on its next tick
    buyer = market.authenticate(key)
    assert buyer.datasets == frozenset({DATASET})
    result = json.loads(market.query(buyer, "SELECT count(*) AS n FROM radio_kpi_v1").body)
    assert result["rows"] == [{"n": world.minted.tree_size}]
    page = market.listing(buyer, DATASET, with_report=True)["asset"]
    assert page["token_id"] == world.minted.token_id and page["owner"] == world.publisher
    expiry = world.licences.expires_at(buyer_address, world.minted.token_id)
    block = world.w3.eth.get_block(bought.block_number)
    assert page["licence"]["expires_at"] == expiry == block["timestamp"] + DAY
    assert [o["price"] for o in page["offers"]] == ["12.5"]

    advance_time(world.w3, DAY + 1)
    market.chain.sync.sync()
    assert market.authenticate(key).datasets == frozenset()
    market.close()


def test_a_sign_in_message_cannot_be_replayed_nor_moved_to_another_domain(world):
    market = world.marketplace()
    from eth_account import Account
    from eth_account.messages import encode_defunct

    account = Account.from_key(account_key(2))
    message = market.chain.sign_in_nonce(account.address)["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    market.chain.sign_in(message, signature)
    with pytest.raises(QueryRefused, match="already used"):
        market.chain.sign_in(message, signature)
    moved = message.replace("127.0.0.1:8787", "evil.example")
    forged = account.sign_message(encode_defunct(text=moved)).signature.to_0x_hex()
    with pytest.raises(QueryRefused, match=r"not 127\.0\.0\.1:8787"):
        market.chain.sign_in(moved, forged)
    other = Account.from_key(account_key(3))
    message = market.chain.sign_in_nonce(account.address)["message"]
    stolen = other.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    with pytest.raises(QueryRefused, match="not by the address"):
        market.chain.sign_in(message, stolen)
    market.close()


def test_node_owners_claim_and_claims_plus_owner_share_plus_dust_equal_proceeds(world):
    w3, licences, coin, token = world.w3, world.licences, world.coin, world.minted.token_id
    size, publisher = world.minted.tree_size, world.publisher
    offer = offer_in_dollars(world, "33.333333", DAY)  # a price that does not divide evenly
    buyer = w3.eth.accounts[BUYER]
    world.coin.send("mint", buyer, 100_000_000)
    pool_before, owed_before = (
        licences.pool(token, size, coin.address),
        licences.owed(publisher, coin.address),
    )
    licences.as_sender(buyer).buy(offer)
    proceeds = 33_333_333
    node_share = licences.pool(token, size, coin.address) - pool_before
    assert node_share == proceeds * NODE_SHARE_BPS // 10_000
    assert licences.owed(publisher, coin.address) - owed_before + node_share == proceeds

    for node, owner in world.node_owners.items():
        licences.as_sender(owner).claim(token, world.minted.table, node, coin.address)
    pool = licences.pool(token, size, coin.address)
    claims = sum(licences.claimed(token, size, n, coin.address) for n in world.node_owners)
    owner_share = licences.owed(publisher, coin.address)
    licences.withdraw(coin.address)
    dust = coin.view("balanceOf", licences.address)  # all that is left after every payment
    assert claims + dust == pool and 0 <= dust < len(world.node_owners)
    assert (
        claims + owner_share + dust
        == coin.view("balanceOf", licences.address) + claims + owner_share
    )
    paid_in = sum(e["args"]["price"] for e in licences.purchases(0, w3.eth.block_number))
    assert claims + owner_share + dust == paid_in  # every sale in tUSD, to the last unit
    node, owner = next(iter(world.node_owners.items()))
    with pytest.raises(ContractRefused, match="NothingToClaim"):  # claim once
        licences.as_sender(owner).claim(token, world.minted.table, node, coin.address)


def test_a_raised_count_cannot_be_claimed_and_is_named_by_verify(world):
    layout = DataLayout(world.data_dir)
    node, owner = sorted(world.node_owners.items())[0]
    table = world.minted.table
    with pytest.raises(ContractRefused, match="BadProof"):
        world.licences.as_sender(owner).claim(
            world.minted.token_id,
            table,
            node,
            world.coin.address,
            rows=table.rows_by_node[node] + 50,
        )
    dataset_dir = layout.dataset_dir(DATASET)
    manifest_file = sorted((dataset_dir / "checkpoints").glob("*.manifest.json"))[-1]
    trust = world.chain.trust_root(world.data_dir)
    asset = (DataAsset(world.w3, world.record.data_asset), world.minted.token_id)
    honest = verify_contribution(dataset_dir, node, trust, manifest_file, asset)
    assert honest.status == "VERIFIED", honest.as_dict()

    table_file = dataset_dir / json.loads(manifest_file.read_bytes())["contributions"]["path"]
    original = table_file.read_bytes()
    raised = dict(table.rows_by_node)
    other = sorted(raised)[1]
    raised[node] += 50  # the node's count raised, taken from another so the total still fits
    raised[other] -= 50
    forged = ContributionTable(DATASET, table.tree_size, raised)
    with pytest.raises(ContractRefused, match="BadProof"):  # its own path, its own root
        world.licences.as_sender(owner).claim(
            world.minted.token_id, forged, node, world.coin.address
        )
    table_file.write_bytes(forged.to_bytes())
    try:
        verdict = verify_contribution(dataset_dir, node, trust, manifest_file, asset)
    finally:
        table_file.write_bytes(original)
    assert verdict.status == "NOT VERIFIED"
    assert verdict.first_failure.name == "contributions"  # not the table the manifest signed
    counts = next(c for c in verdict.checks if c.name == "counts")
    assert counts.ok is False
    assert f"node {node}: table says {raised[node]}, the rows say {table.rows_by_node[node]}" in (
        counts.detail
    )
    assert f"node {other}: table says {raised[other]}" in counts.detail
