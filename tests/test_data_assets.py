"""Data assets end to end on the in-process EVM: mint, offer, sign in, buy, query, expire, claim.

The pipeline's own output (the session's demo data directory, with its contribution tables)
is anchored on a fresh in-process chain; the contracts, transactions and events are real.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from asset_support import (
    DATASET,
    NODE_SHARE_BPS,
    ForgedLicences,
    NamedToken,
    OpenNodes,
    account_key,
    advance_time,
    build_world,
    offer_in_dollars,
    settle,
    sign_in,
)

from market import onchain
from market.entitlements import licences_of
from market.licence_chain import NATIVE
from market.onchain import ChainUnavailable, check_contracts
from market.policy import QueryRefused
from proofs.anchor import AnchorRegistry
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


def test_sign_in_refused_while_many_nonces_are_open_comes_back_once_they_expire(world, monkeypatch):
    # ~10,000 unauthenticated requests never signed held every place, expired or not, for good.
    monkeypatch.setattr(onchain, "MAX_OPEN_NONCES", 3)
    market = world.marketplace()
    stranger = "0x" + "ab" * 20

    def expire_every_nonce() -> None:
        with market.chain.store._connect() as con:  # their five minutes are over
            con.execute("UPDATE siwe_nonces SET expires_at = now() - INTERVAL 1 SECOND")

    expire_every_nonce()  # other tests' sign-ins
    for _ in range(3):
        market.chain.sign_in_nonce(stranger)
    with pytest.raises(QueryRefused, match="too many sign-ins in progress"):
        market.chain.sign_in_nonce(stranger)
    expire_every_nonce()
    assert "Nonce: " in market.chain.sign_in_nonce(stranger)["message"]
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

    settled = settle(world)
    assert settled.claims + settled.owner_share + settled.dust == settled.paid_in
    assert settled.claims + settled.dust == licences.pool(token, size, coin.address)
    assert 0 <= settled.dust < len(world.node_owners)  # less than a unit per node
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


# -- attacks on the marketplace's reading of the chain -------------------------------------------


def test_a_licence_event_forged_by_another_contract_grants_nothing(world):
    market = world.marketplace()
    wallet = world.w3.eth.accounts[8]
    key = sign_in(market, account_key(8))["api_key"]
    forged = ForgedLicences.deploy(world.w3, sender=wallet)
    sent = forged.send("forge", world.minted.token_id, wallet, 2**63, world.minted.tree_size)
    assert len(sent.logs) == 1  # an event shaped exactly like DataLicences' LicencePurchased
    market.chain.sync.sync()
    assert market.authenticate(key).datasets == frozenset()
    assert licences_of(market.store, wallet) == []
    market.close()


def test_a_token_for_the_same_dataset_under_another_registry_grants_nothing(world):
    """Anyone may anchor a dataset of the same name in a registry of their own, mint it on the
    same DataAsset and sell it on the same DataLicences: its buyers get nothing here."""
    w3, attacker, buyer = world.w3, world.w3.eth.accounts[4], world.w3.eth.accounts[9]
    rogue = AnchorRegistry.deploy(w3, sender=attacker)
    rogue.anchor(DATASET, 10, b"\x11" * 32, b"\x22" * 32)
    asset = DataAsset(w3, world.record.data_asset, attacker)
    token = int(asset.mint(rogue.address, DATASET, 10, b"\x05" * 32, 0, b"\x00" * 32, 0).value)
    offer = int(
        world.licences.as_sender(attacker).create_offer(token, NATIVE, 1, DAY, b"\x00" * 32).value
    )
    market = world.marketplace()
    key = sign_in(market, account_key(9))["api_key"]
    world.licences.as_sender(buyer).buy(offer)
    assert world.licences.expires_at(buyer, token) > 0  # a real licence, to the rogue token
    market.chain.sync.sync()
    assert market.authenticate(key).datasets == frozenset()
    # Nor is its purchase read: the node filters on this publisher's asset ids (1-wei floods
    # of another asset's licences were all fetched and decoded at each sync).
    assert market.chain.sync._tokens() == [world.minted.token_id]
    head = w3.eth.block_number
    read = world.licences.purchases(0, head, market.chain.sync._tokens())
    assert {e["args"]["assetId"] for e in read} <= {world.minted.token_id}
    assert [e["args"]["assetId"] for e in world.licences.purchases(0, head, [token])] == [token]
    market.close()


def test_a_listing_reads_its_own_asset_s_offers_only(world, monkeypatch):
    # Anyone can make offers on the shared DataLicences: each page read every one of them.
    w3, stranger = world.w3, world.w3.eth.accounts[4]
    rogue = AnchorRegistry.deploy(w3, sender=stranger)
    rogue.anchor("spam.v1", 1, b"\x11" * 32, b"\x22" * 32)
    asset = DataAsset(w3, world.record.data_asset, stranger)
    token = int(asset.mint(rogue.address, "spam.v1", 1, b"\x05" * 32, 0, b"\x00" * 32, 0).value)
    for _ in range(5):
        world.licences.as_sender(stranger).create_offer(token, NATIVE, 1, DAY, b"\x00" * 32)
    ours = offer_in_dollars(world, "7.5", DAY)
    market = world.marketplace()
    buyer = market.authenticate(sign_in(market, account_key(9))["api_key"])
    read = []
    real = type(world.licences).offer
    monkeypatch.setattr(
        type(world.licences), "offer", lambda self, i: read.append(i) or real(self, i)
    )
    page = market.chain.asset_view(DATASET, buyer)
    assert ours in {o["offer_id"] for o in page["offers"]}
    assert all(real(world.licences, i).asset_id == world.minted.token_id for i in read)
    market.close()


def test_an_offer_a_reorg_took_away_leaves_the_listing(world):
    # Its id stayed in the page's list, and reading it raised on every later page.
    market = world.marketplace()
    buyer = market.authenticate(sign_in(market, account_key(9))["api_key"])
    before = world.w3.testing.snapshot()
    gone = offer_in_dollars(world, "3.5", DAY)
    assert gone in {o["offer_id"] for o in market.chain.asset_view(DATASET, buyer)["offers"]}
    world.w3.testing.revert(before)  # the blocks that made it are no longer the chain's
    assert gone not in {o["offer_id"] for o in market.chain.asset_view(DATASET, buyer)["offers"]}
    market.close()


def test_an_asset_record_naming_other_contracts_or_another_chain_is_refused(world):
    record, w3 = world.record, world.w3
    other_asset = DataAsset.deploy(w3)
    cases = {
        "chain 1": replace(record, chain_id=1),
        "no DataLicences contract at": replace(record, data_licences=w3.eth.accounts[3]),
        "are not DataLicences and DataAsset": replace(record, data_licences=record.stablecoin),
        "not DataLicences and DataAsset": replace(record, data_asset=record.stablecoin),
        f"sells {record.data_asset}'s tokens": replace(record, data_asset=other_asset.address),
        "pays node registry": replace(record, node_registry=record.stablecoin),
    }
    check_contracts(w3, record)  # the record as minted
    for refusal, edited in cases.items():
        with pytest.raises(ChainUnavailable, match=re.escape(refusal)):
            check_contracts(w3, edited)


def test_offers_in_a_hostile_or_unreadable_currency_do_not_break_the_page(world):
    hostile = NamedToken.deploy(world.w3, "Evil", '<img src=x onerror="alert(1)">\n\x00' + "A" * 99)
    unreadable = OpenNodes.deploy(world.w3)  # has code, has no decimals()
    licences, token = world.licences, world.minted.token_id
    marked = int(licences.create_offer(token, hostile.address, 10**18, DAY, b"\x00" * 32).value)
    broken = int(licences.create_offer(token, unreadable.address, 1, DAY, b"\x00" * 32).value)
    market = world.marketplace()
    buyer = market.authenticate(sign_in(market, account_key(2))["api_key"])
    try:
        shown = {
            o["offer_id"]: o
            for o in market.listing(buyer, DATASET, with_report=True)["asset"]["offers"]
        }
        assert shown[marked]["symbol"] == "<img src=x onerr"  # printable, 16 at most
        assert broken not in shown
        with pytest.raises(QueryRefused, match="no readable price"):
            market.chain.buy(DATASET, buyer, broken)
    finally:
        for offer in (marked, broken):
            licences.set_active(offer, False)
        market.close()


# -- the asset check of `rda verify --contribution` ----------------------------------------------


@pytest.fixture(scope="module")
def minted_checkpoint(world):
    """The minted checkpoint's manifest and digest, and a trust root resolved by verifying it."""
    from proofs.manifest import load_manifest

    dataset_dir = DataLayout(world.data_dir).dataset_dir(DATASET)
    manifest_file = sorted((dataset_dir / "checkpoints").glob("*.manifest.json"))[-1]
    trust = world.chain.trust_root(world.data_dir)
    node = sorted(world.node_owners)[0]
    asset = (DataAsset(world.w3, world.record.data_asset), world.minted.token_id)
    assert verify_contribution(dataset_dir, node, trust, manifest_file, asset).status == "VERIFIED"
    manifest, digest = load_manifest(manifest_file)
    return manifest, digest, trust


def asset_section(world, **changes) -> dict:
    named = {"chain_id": world.chain.chain_id, "contract": world.record.data_asset}
    return {**named, "token_id": world.minted.token_id, **changes}


def test_the_asset_a_manifest_names_is_checked_without_the_publisher_s_record(
    world, minted_checkpoint
):
    from proofs.contribution_audit import _asset_check

    manifest, digest, trust = minted_checkpoint
    named = {**manifest, "asset": asset_section(world)}
    check = _asset_check(None, trust, named, world.minted.table, digest)
    assert (check.ok, check.detail) == (
        True,
        f"asset {world.minted.token_id} holds this root, bound to this manifest; sales pay into it",
    )


def test_the_manifest_s_asset_is_the_one_checked_over_the_record_s(world, minted_checkpoint):
    from proofs.contribution_audit import _asset_check

    manifest, digest, trust = minted_checkpoint
    named = {**manifest, "asset": asset_section(world, token_id=world.minted.token_id + 7)}
    record = (DataAsset(world.w3, world.record.data_asset), world.minted.token_id)
    check = _asset_check(record, trust, named, world.minted.table, digest)
    assert check.ok is False and f"asset {world.minted.token_id + 7}" in check.detail


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"chain_id": 1}, "the manifest names an asset on chain 1, not {chain}"),
        ({"token_id": "1"}, "the manifest's asset section is malformed"),
        ({"contract": "0x12"}, "the manifest's asset contract '0x12'"),
    ],
)
def test_a_wrong_asset_in_the_manifest_fails_the_check(world, minted_checkpoint, changes, why):
    from proofs.contribution_audit import _asset_check

    manifest, digest, trust = minted_checkpoint
    named = {**manifest, "asset": asset_section(world, **changes)}
    check = _asset_check(None, trust, named, world.minted.table, digest)
    assert check.ok is False and why.format(chain=world.chain.chain_id) in check.detail


def test_a_contract_that_is_no_data_asset_fails_the_check_not_the_verifier(
    world, minted_checkpoint
):
    from proofs.contribution_audit import _asset_check

    manifest, digest, trust = minted_checkpoint
    impostor = (DataAsset(world.w3, world.chain.contract), world.minted.token_id)  # the registry
    check = _asset_check(impostor, trust, manifest, world.minted.table, digest)
    assert check.ok is False
    assert f"at {world.chain.contract}: its code" in check.detail


def test_a_look_alike_of_the_data_asset_fails_the_check_whatever_it_holds(world, minted_checkpoint):
    """The DataAsset's code and a byte more: it would answer as one, holding any root."""
    from test_verify_chain_attacks import deploy_code

    from proofs.contribution_audit import _asset_check

    manifest, digest, trust = minted_checkpoint
    code = world.w3.eth.get_code(world.record.data_asset) + b"\x00"
    look_alike = (DataAsset(world.w3, deploy_code(world.w3, code)), world.minted.token_id)
    check = _asset_check(look_alike, trust, manifest, world.minted.table, digest)
    assert check.ok is False
    assert "is not the DataAsset's compiled from the source" in check.detail


def _contributions_check_with(world, forge):
    """The verifier's contributions check of the latest checkpoint, its table file changed by
    ``forge`` (and put back after)."""
    dataset_dir = DataLayout(world.data_dir).dataset_dir(DATASET)
    manifest_file = sorted((dataset_dir / "checkpoints").glob("*.manifest.json"))[-1]
    table_file = dataset_dir / json.loads(manifest_file.read_bytes())["contributions"]["path"]
    original = table_file.read_bytes()
    try:
        forge(table_file)
        node = sorted(world.node_owners)[0]
        verdict = verify_contribution(
            dataset_dir, node, world.chain.trust_root(world.data_dir), manifest_file
        )
    finally:
        table_file.write_bytes(original)
    return next(c for c in verdict.checks if c.name == "contributions")


def test_a_huge_contribution_table_is_a_failed_check_not_loaded(world):
    def grow(table_file):
        with table_file.open("r+b") as file:
            file.truncate(2**30)  # sparse: no disk used

    check = _contributions_check_with(world, grow)
    assert check.ok is False and "bytes: not read" in check.detail


def test_a_table_whose_counts_add_up_past_64_bits_is_a_failed_check_not_a_crash(world):
    def overflow(table_file):
        forged = json.loads(table_file.read_bytes())
        for entry in forged["nodes"][:2]:  # each a count the tree takes, their sum one it cannot
            entry["rows"] = 2**63
        forged.update(tree_size=2**65, node_rows=2**64)
        table_file.write_text(json.dumps(forged))

    check = _contributions_check_with(world, overflow)
    assert check.ok is False
    assert "the table's rows add up to more than 18446744073709551615" in check.detail
