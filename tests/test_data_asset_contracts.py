"""DataAsset and DataLicences under attack, on the in-process EVM: access control, reentrancy,
claim replay, rounding dust, prices and decimals, expiry, transfers. One chain for the module;
each test mints its own dataset (anchors are per dataset)."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from asset_support import FeeToken, OpenNodes, Reenterer, advance_time
from hypothesis import given
from hypothesis import strategies as st

from infra.chain import ChainConfig, connect
from market.licence_chain import (
    NATIVE,
    DataLicences,
    PriceError,
    TestStablecoin,
    from_units,
    to_units,
)
from market.minting import MintError, deploy_contracts
from proofs.anchor import AnchorRegistry
from proofs.contributions import ContributionTable, node_token_id, verify_path
from proofs.data_asset import Contract, ContractRefused, DataAsset
from proofs.identity import IdentityError
from proofs.jcs import canonicalize
from proofs.node_owners import RegistryNodeOwners, node_registry_of
from sinks.layout import DataLayout
from streaming.assets import AssetRecord

_datasets = itertools.count(1)
HOUR = 3600
TERMS = b"\x05" * 32


@dataclass
class Chain:
    w3: object
    registry: AnchorRegistry
    asset: DataAsset
    licences: DataLicences
    coin: TestStablecoin
    nodes: Contract  # OpenNodes

    @property
    def accounts(self) -> list[str]:
        return self.w3.eth.accounts


@pytest.fixture(scope="module")
def chain() -> Chain:
    w3 = connect(ChainConfig())
    registry = AnchorRegistry.deploy(w3)
    asset = DataAsset.deploy(w3)
    nodes = OpenNodes.deploy(w3)
    licences = DataLicences.deploy(w3, asset.address, nodes.address)
    coin = TestStablecoin.deploy(w3)
    for account in w3.eth.accounts[1:5]:
        coin.send("mint", account, 10**12)
    return Chain(w3, registry, asset, licences, coin, nodes)


def _table_with_node_names(dataset: str, size: int, rows: dict[str, int]) -> ContributionTable:
    return ContributionTable(dataset, size, {f"{dataset}/{n}": r for n, r in rows.items()})


def mint_named(chain: Chain, rows: dict[str, int], share_bps: int = 3000):
    """Mint a dataset whose node ids are unique to it (node tokens are global)."""
    dataset = f"d{next(_datasets)}.v1"
    size = sum(rows.values()) + 1
    chain.registry.anchor(dataset, size, b"\x11" * 32, b"\x22" * 32)
    table = _table_with_node_names(dataset, size, rows)
    sent = chain.asset.mint(
        chain.registry.address, dataset, size, TERMS, share_bps, table.root(), table.node_rows
    )
    owners = {}
    for i, node in enumerate(sorted(table.rows_by_node)):
        owners[node] = chain.accounts[5 + i % 4]
        chain.nodes.send("mint", owners[node], node)
    return int(sent.value), table, owners


# -- access control ----------------------------------------------------------------------


def test_only_the_registry_owner_mints_and_only_anchored_checkpoints(chain):
    chain.registry.anchor("acl.v1", 10, b"\x11" * 32, b"\x22" * 32)
    stranger = chain.asset.as_sender(chain.accounts[1])
    with pytest.raises(ContractRefused, match="NotPublisher"):
        stranger.mint(chain.registry.address, "acl.v1", 10, TERMS, 0, b"\x00" * 32, 0)
    with pytest.raises(ContractRefused, match="NotAnchored"):
        chain.asset.mint(chain.registry.address, "acl.v1", 11, TERMS, 0, b"\x00" * 32, 0)
    with pytest.raises(ContractRefused, match="ShareTooLarge"):
        chain.asset.mint(chain.registry.address, "acl.v1", 10, TERMS, 10_001, b"\x00" * 32, 0)
    with pytest.raises(ContractRefused, match="RowsExceedTreeSize"):
        chain.asset.mint(chain.registry.address, "acl.v1", 10, TERMS, 0, b"\x01" * 32, 11)
    chain.asset.mint(chain.registry.address, "acl.v1", 10, TERMS, 0, b"\x00" * 32, 0)
    with pytest.raises(ContractRefused, match="AlreadyMinted"):
        chain.asset.mint(chain.registry.address, "acl.v1", 10, TERMS, 0, b"\x00" * 32, 0)


def test_only_the_asset_owner_makes_offers_and_only_node_owners_claim(chain):
    token, table, owners = mint_named(chain, {"a": 3, "b": 5})
    stranger = chain.licences.as_sender(chain.accounts[1])
    with pytest.raises(ContractRefused, match="NotAssetOwner"):
        stranger.create_offer(token, NATIVE, 10, HOUR, TERMS)
    offer = int(chain.licences.create_offer(token, NATIVE, 10, HOUR, TERMS).value)
    with pytest.raises(ContractRefused, match="NotAssetOwner"):
        stranger.set_active(offer, False)
    chain.licences.as_sender(chain.accounts[2]).buy(offer)
    node = sorted(owners)[0]
    with pytest.raises(ContractRefused, match="NotNodeOwner"):
        stranger.claim(token, table, node)
    with pytest.raises(ContractRefused, match="NotPublisher"):  # the publisher commits tables
        chain.asset.as_sender(chain.accounts[1]).commit_contributions(
            [(token, table.tree_size + 1, table.root(), table.node_rows)]
        )


def test_a_node_is_paid_to_whoever_owns_its_token_in_the_registry_at_claim_time(chain):
    token, table, owners = mint_named(chain, {"a": 1, "b": 1})
    node = sorted(owners)[0]
    seller, newcomer = owners[node], chain.accounts[9]
    registry = RegistryNodeOwners(chain.w3, chain.licences.node_registry())
    assert registry.address == chain.nodes.address  # the registry DataLicences pays from
    assert registry.owner_of(node) == seller
    assert registry.owner_of("never-registered") is None
    offer = int(chain.licences.create_offer(token, NATIVE, 1000, HOUR, TERMS).value)
    chain.licences.as_sender(chain.accounts[2]).buy(offer)
    chain.nodes.as_sender(seller).send("transferFrom", seller, newcomer, node_token_id(node))
    assert registry.owner_of(node) == newcomer
    with pytest.raises(ContractRefused, match="NotNodeOwner"):
        chain.licences.as_sender(seller).claim(token, table, node)
    assert int(chain.licences.as_sender(newcomer).claim(token, table, node).value) == 150


def test_a_node_registry_must_be_a_contract(chain):
    with pytest.raises(ValueError, match="no node registry at"):
        RegistryNodeOwners(chain.w3, chain.accounts[1])


def test_contracts_are_not_deployed_without_a_node_registry_to_pay(chain, tmp_path):
    layout = DataLayout(tmp_path)
    with pytest.raises(MintError, match="--node-registry ADDRESS"):
        deploy_contracts(chain.w3, layout, chain.registry.address, None)
    with pytest.raises(MintError, match="no node registry at"):
        deploy_contracts(chain.w3, layout, chain.registry.address, chain.accounts[1])
    assert not AssetRecord.path(layout).exists()


def test_the_node_registry_comes_from_the_publisher_identity(tmp_path):
    assert node_registry_of(tmp_path) is None  # no identity document
    (tmp_path / "publisher-identity.json").write_text("{}")
    with pytest.raises(IdentityError, match=r"publisher-identity\.json is not a valid"):
        node_registry_of(tmp_path)  # one a verifier refuses is not taken for none


# -- reentrancy -------------------------------------------------------------------------------


def test_a_buyer_contract_cannot_reenter_buy_from_the_licence_callback(chain):
    token, _table, _owners = mint_named(chain, {"a": 2})
    offer = int(chain.licences.create_offer(token, NATIVE, 1000, HOUR, TERMS).value)
    attacker = Reenterer.deploy(chain.w3)
    buy = chain.licences.contract.encode_abi("buy", [offer])
    attacker.send("call", chain.licences.address, buy, buy, 1000, value=2000)
    assert attacker.view("attempts") == 1 and attacker.view("reentered") is False
    assert chain.licences.view("balanceOf", attacker.address, offer) == 1  # one licence, not two
    assert chain.w3.eth.get_balance(attacker.address) == 1000  # the nested payment came back


def test_an_owner_contract_cannot_reenter_withdraw_nor_claim(chain):
    token, table, owners = mint_named(chain, {"a": 2, "b": 2}, share_bps=5000)
    attacker = Reenterer.deploy(chain.w3)
    publisher = chain.registry.sender
    chain.asset.send("transferFrom", publisher, attacker.address, token)
    create = chain.licences.contract.encode_abi("createOffer", [token, NATIVE, 10**6, HOUR, TERMS])
    attacker.send("call", chain.licences.address, create, b"", 0)
    offer = int(chain.licences.view("offerCount"))
    chain.licences.as_sender(chain.accounts[2]).buy(offer)
    withdraw = chain.licences.contract.encode_abi("withdraw", [NATIVE])
    attacker.send("call", chain.licences.address, withdraw, withdraw, 0)
    assert attacker.view("reentered") is False
    assert chain.w3.eth.get_balance(attacker.address) == 10**6 // 2  # paid once
    assert chain.licences.owed(attacker.address) == 0

    node = sorted(owners)[0]
    chain.nodes.as_sender(owners[node]).send(
        "transferFrom", owners[node], attacker.address, node_token_id(node)
    )
    rows, path = table.path(node)
    args = [
        token,
        table.tree_size,
        NATIVE,
        node_token_id(node),
        rows,
        list(path.siblings),
        list(path.sums),
        path.left_mask,
    ]
    claim = chain.licences.contract.encode_abi("claim", args)
    before = chain.w3.eth.get_balance(attacker.address)
    attacker.send("call", chain.licences.address, claim, claim, 0)
    assert attacker.view("reentered") is False
    assert chain.w3.eth.get_balance(attacker.address) - before == (10**6 // 2) // 2


# -- claims: replay, dust, tampering ---------------------------------------------------------


def test_a_claim_is_paid_once_and_again_only_for_new_sales(chain):
    token, table, owners = mint_named(chain, {"a": 1, "b": 1, "c": 1})
    offer = int(chain.licences.create_offer(token, NATIVE, 10_000, HOUR, TERMS).value)
    buyer = chain.licences.as_sender(chain.accounts[2])
    buyer.buy(offer)
    node = sorted(owners)[0]
    claimer = chain.licences.as_sender(owners[node])
    assert int(claimer.claim(token, table, node).value) == 1000  # 30 % of 10000, a third
    with pytest.raises(ContractRefused, match="NothingToClaim"):
        claimer.claim(token, table, node)
    buyer.buy(offer)
    assert int(claimer.claim(token, table, node).value) == 1000
    with pytest.raises(ContractRefused, match="NothingToClaim"):
        claimer.claim(token, table, node, currency=chain.coin.address)  # nothing sold in tUSD


def test_rounding_leaves_less_than_one_unit_per_node_and_everything_adds_up(chain):
    token, table, owners = mint_named(chain, {"a": 1, "b": 1, "c": 1}, share_bps=10_000)
    offer = int(chain.licences.create_offer(token, chain.coin.address, 10, HOUR, TERMS).value)
    chain.licences.as_sender(chain.accounts[3]).buy(offer)
    pool = chain.licences.pool(token, table.tree_size, chain.coin.address)
    paid = [
        int(chain.licences.as_sender(owners[n]).claim(token, table, n, chain.coin.address).value)
        for n in sorted(owners)
    ]
    assert (pool, paid) == (10, [3, 3, 3])  # dust: 1 unit stays in the contract
    assert chain.licences.owed(chain.registry.sender, chain.coin.address) >= 0


def test_a_raised_count_or_a_foreign_proof_does_not_verify(chain):
    token, table, owners = mint_named(chain, {"a": 4, "b": 6, "c": 1})
    node = sorted(owners)[0]
    offer = int(chain.licences.create_offer(token, NATIVE, 10_000, HOUR, TERMS).value)
    chain.licences.as_sender(chain.accounts[2]).buy(offer)
    claimer = chain.licences.as_sender(owners[node])
    with pytest.raises(ContractRefused, match="BadProof"):
        claimer.claim(token, table, node, rows=table.rows_by_node[node] + 1)
    raised = ContributionTable(
        table.dataset, table.tree_size, {**table.rows_by_node, node: table.rows_by_node[node] + 1}
    )
    with pytest.raises(ContractRefused, match="BadProof"):
        claimer.claim(token, raised, node)


# -- prices and decimals ---------------------------------------------------------------------


def test_prices_are_converted_with_the_currency_decimals_and_never_rounded():
    assert to_units("12.50", 6) == 12_500_000
    assert to_units("1", 18) == 10**18
    assert to_units("0.000000000000000001", 18) == 1
    assert from_units(12_500_000, 6) == "12.5"
    for bad in ("0.0000001", "0", "-1", "NaN", "Infinity", "1e400", "abc"):
        with pytest.raises(PriceError):
            to_units(bad, 6)


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**12), places=6))
def test_a_price_round_trips_through_its_units(price):
    assert Decimal(from_units(to_units(price, 6), 6)) == price


def test_payment_must_be_exact_and_in_the_offers_currency(chain):
    token, _table, _owners = mint_named(chain, {"a": 1})
    native = int(chain.licences.create_offer(token, NATIVE, 1000, HOUR, TERMS).value)
    dollars = int(chain.licences.create_offer(token, chain.coin.address, 5, HOUR, TERMS).value)
    buyer = chain.licences.as_sender(chain.accounts[2])
    for sent in (999, 1001, 0):
        with pytest.raises(ContractRefused, match="WrongPayment"):
            buyer.send("buy", native, value=sent)
    chain.coin.as_sender(chain.accounts[2]).send("approve", chain.licences.address, 5)
    with pytest.raises(ContractRefused, match="WrongPayment"):
        buyer.send("buy", dollars, value=1)  # coins sent with a token-priced offer
    fee = FeeToken.deploy(chain.w3)
    taxed = int(chain.licences.create_offer(token, fee.address, 100, HOUR, TERMS).value)
    fee.send("approve", chain.licences.address, 100)
    with pytest.raises(ContractRefused, match="WrongPayment"):  # 99 of 100 would arrive
        chain.licences.buy(taxed)
    for price, duration, currency in (
        (0, HOUR, NATIVE),
        (1, 0, NATIVE),
        (1, HOUR, chain.accounts[3]),
    ):
        with pytest.raises(ContractRefused, match="BadOffer"):
            chain.licences.create_offer(token, currency, price, duration, TERMS)


# -- expiry and transfers --------------------------------------------------------------------


def test_a_licence_is_valid_until_its_expiry_and_a_renewal_extends_it(chain):
    token, _table, _owners = mint_named(chain, {"a": 1})
    offer = int(chain.licences.create_offer(token, NATIVE, 1, HOUR, TERMS).value)
    holder = chain.accounts[4]
    buyer = chain.licences.as_sender(holder)
    first = buyer.buy(offer)
    expiry = chain.licences.expires_at(holder, token)
    assert expiry == chain.w3.eth.get_block(first.block_number)["timestamp"] + HOUR
    buyer.buy(offer)
    assert chain.licences.expires_at(holder, token) == expiry + HOUR  # from the old expiry
    advance_time(chain.w3, 2 * HOUR - 60)
    assert chain.licences.view("licenceValid", holder, token) is True
    advance_time(chain.w3, 120)
    assert chain.licences.view("licenceValid", holder, token) is False


def test_licences_do_not_move_and_offers_lapse_when_the_asset_changes_hands(chain):
    token, table, _owners = mint_named(chain, {"a": 1})
    offer = int(chain.licences.create_offer(token, NATIVE, 100, HOUR, TERMS).value)
    holder = chain.accounts[2]
    chain.licences.as_sender(holder).buy(offer)
    with pytest.raises(ContractRefused, match="LicenceNotTransferable"):
        chain.licences.as_sender(holder).send(
            "safeTransferFrom", holder, chain.accounts[3], offer, 1, b""
        )
    publisher, buyer_of_asset = chain.registry.sender, chain.accounts[1]
    owed = chain.licences.owed(publisher)
    chain.asset.send("transferFrom", publisher, buyer_of_asset, token)
    with pytest.raises(ContractRefused, match="OfferLapsed"):
        chain.licences.as_sender(holder).buy(offer)
    new_offer = int(
        chain.licences.as_sender(buyer_of_asset).create_offer(token, NATIVE, 100, HOUR, TERMS).value
    )
    chain.licences.as_sender(holder).buy(new_offer)
    assert chain.licences.owed(buyer_of_asset) == 70  # revenue follows the token
    assert chain.licences.owed(publisher) == owed  # what was earned before stays earned
    info = chain.asset.info(token)
    assert (info.owner, info.registry) == (buyer_of_asset, chain.registry.address)
    chain.registry.anchor(
        table.dataset, table.tree_size + 5, b"\x33" * 32, b"\x44" * 32, table.tree_size
    )
    chain.asset.commit_contributions([(token, table.tree_size + 5, table.root(), table.node_rows)])
    assert chain.asset.info(token).latest_tree_size == table.tree_size + 5  # the publisher still


# -- the sum tree ----------------------------------------------------------------------------


@given(
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=6), st.integers(1, 10**6), min_size=1, max_size=40
    )
)
def test_every_entry_has_a_path_to_the_root_and_no_other_count_does(rows):
    table = ContributionTable("t.v1", sum(rows.values()), rows)
    root = table.root()
    for node, count in rows.items():
        listed, path = table.path(node)
        assert listed == count
        assert verify_path(root, table.node_rows, node_token_id(node), count, path)
        assert not verify_path(root, table.node_rows, node_token_id(node), count + 1, path)
        assert not verify_path(root, table.node_rows + 1, node_token_id(node), count, path)


def _split_tree_root(leaves: list[tuple[bytes, int]]) -> tuple[bytes, int]:
    """The sum tree as docs/data-assets.md defines it: split at the largest power of two below
    the size (RFC 9162 2.1.1), inner node SHA-256(0x01 | left | left sum | right | right sum)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    (left, left_sum), (right, right_sum) = (
        _split_tree_root(leaves[:k]),
        _split_tree_root(leaves[k:]),
    )
    data = b"\x01" + left + left_sum.to_bytes(8, "big") + right + right_sum.to_bytes(8, "big")
    return hashlib.sha256(data).digest(), left_sum + right_sum


@given(st.lists(st.integers(1, 2**40), min_size=1, max_size=70))
def test_the_root_is_the_split_tree_of_the_entries_in_token_id_order(counts):
    table = ContributionTable("t.v1", sum(counts), {f"n{i}": c for i, c in enumerate(counts)})
    leaves = sorted((node_token_id(f"n{i}"), c) for i, c in enumerate(counts))
    hashed = [
        (hashlib.sha256(b"\x00" + t.to_bytes(32, "big") + c.to_bytes(8, "big")).digest(), c)
        for t, c in leaves
    ]
    assert table.root() == _split_tree_root(hashed)[0]


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), st.integers(1, 2**60), max_size=12),
    st.text(max_size=8),
    st.integers(0, 2**60),
)
def test_a_table_s_bytes_are_the_canonical_json_of_its_document_or_refused_alike(
    rows, dataset, extra
):
    table = ContributionTable(dataset, sum(rows.values()) + extra, rows)
    try:
        expected = canonicalize(table.document())
    except ValueError as refused:  # a count above 2**53 - 1, an unpaired surrogate
        with pytest.raises(ValueError, match=re.escape(str(refused))):
            table.to_bytes()
    else:
        assert table.to_bytes() == expected
