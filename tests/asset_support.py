"""The data-asset flow shared by the in-process EVM and anvil end-to-end tests.

A copy of the session's demo data directory is anchored on the chain under test (the
pipeline wrote its checkpoints and contribution tables), its nodes get owners in a node
registry, and the publisher mints a dataset and offers licences; the tests then play the
buyer, the marketplace and the node owners against the real contracts.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct

from market.licence_chain import DataLicences, TestStablecoin, to_units
from market.minting import Minted, deploy_contracts, mint
from market.onchain import ChainMarket
from market.service import Marketplace
from market.store import MarketStore, market_path
from proofs.data_asset import Contract
from sinks.catalog import Catalog
from sinks.layout import DataLayout
from streaming.assets import AssetRecord
from streaming.chain import ChainContext
from streaming.chain_binding import reanchor_data_dir

HOSTILE = Path(__file__).parent / "contracts" / "Hostile.json"
DATASET = "radio_kpi.v1"
ORIGIN = "http://127.0.0.1:8787"
NODE_SHARE_BPS = 3_000  # 30 % of every sale to the nodes' owners


def _hostile(name: str, doc: str) -> type[Contract]:
    """A client class for one contract of ``tests/contracts/Hostile.sol``."""
    members = {"artifact_path": HOSTILE, "artifact_name": name, "__doc__": doc}
    return type(name, (Contract,), members)


OpenNodes = _hostile("OpenNodes", "An ERC-721 with open minting, in place of the node registry.")
Reenterer = _hostile("Reenterer", "Calls its target again from every callback it gets.")
FeeToken = _hostile("FeeToken", "An ERC-20 that keeps 1 % of every transfer.")
ForgedLicences = _hostile("ForgedLicences", "Emits LicencePurchased with no sale behind it.")
NamedToken = _hostile("NamedToken", "An ERC-20 with any name and symbol (markup, controls…).")


@dataclass
class AssetWorld:
    w3: Any
    chain: ChainContext
    data_dir: Path
    record: AssetRecord
    minted: Minted
    licences: DataLicences
    coin: TestStablecoin
    nodes: Contract  # OpenNodes
    node_owners: dict[str, str]  # node id -> owner address

    @property
    def publisher(self) -> str:
        return self.chain.registry.sender

    def marketplace(self) -> Marketplace:
        market = Marketplace(self.data_dir)
        market.chain = ChainMarket.open(
            self.w3, self.data_dir, MarketStore(market_path(self.data_dir)), ORIGIN
        )
        return market


def build_world(
    chain: ChainContext, demo_dir: Path, root: Path, owner_accounts: list[str]
) -> AssetWorld:
    data_dir = root / "data"
    shutil.copytree(demo_dir, data_dir, ignore=shutil.ignore_patterns("*.wal", "market.duckdb"))
    reanchor_data_dir(chain, data_dir)
    w3 = chain.registry.w3
    layout = DataLayout(data_dir)
    nodes = OpenNodes.deploy(w3)
    record = deploy_contracts(w3, layout, chain.contract, nodes.address)
    catalog = Catalog(layout)
    try:
        minted = mint(w3, layout, catalog, DATASET, record, "CC-BY-4.0", NODE_SHARE_BPS)
    finally:
        catalog.close()
    owners = {}
    for i, node in enumerate(sorted(minted.table.rows_by_node)):
        owners[node] = owner_accounts[i % len(owner_accounts)]
        nodes.send("mint", owners[node], node)
    return AssetWorld(
        w3,
        chain,
        data_dir,
        record,
        minted,
        DataLicences(w3, record.data_licences),
        TestStablecoin(w3, record.stablecoin),
        nodes,
        owners,
    )


def sign_in(market: Marketplace, key: Any) -> dict[str, Any]:
    """What the page does: ask for the message, sign it in the wallet, send it back."""
    account = Account.from_key(key)
    message = market.chain.sign_in_nonce(account.address)["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    return market.chain.sign_in(message, signature)


def offer_in_dollars(world: AssetWorld, price: str, duration_s: int) -> int:
    sent = world.licences.create_offer(
        world.minted.token_id,
        world.coin.address,
        to_units(price, 6),
        duration_s,
        b"\x07" * 32,
    )
    return int(sent.value)


def advance_time(w3: Any, seconds: int) -> None:
    """Move the chain's clock on and mine a block (eth-tester or anvil)."""
    if hasattr(w3.testing, "timeTravel") and "EthereumTester" in type(w3.provider).__name__:
        w3.testing.timeTravel(w3.eth.get_block("latest")["timestamp"] + seconds)
        w3.testing.mine()
        return
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


@dataclass(frozen=True)
class Settlement:
    """Where every unit paid for licences in one currency went, read from the chain."""

    paid_in: int  # the prices of every LicencePurchased on the canonical chain
    claims: int  # claimed by node owners, over every node of the minted table
    owner_share: int  # withdrawn by the asset's owner
    dust: int  # what stays in the contract once everyone has been paid


def settle(world: AssetWorld) -> Settlement:
    """Every node owner claims what is due in tUSD, the asset's owner withdraws; then the
    accounts of everything paid in tUSD, from the chain's events and balances."""
    from proofs.data_asset import ContractRefused

    licences, token, table = world.licences, world.minted.token_id, world.minted.table
    coin = world.coin.address
    for node, owner in world.node_owners.items():
        try:
            licences.as_sender(owner).claim(token, table, node, coin)
        except ContractRefused as refused:  # a node claimed all it was due already
            assert refused.error == "NothingToClaim", refused
    if licences.owed(world.publisher, coin):
        licences.as_sender(world.publisher).withdraw(coin)
    head = world.w3.eth.block_number
    withdrawn = licences.contract.events.Withdrawn.get_logs(from_block=0, to_block=head)
    sales = [e["args"] for e in licences.purchases(0, head, [token])]
    return Settlement(
        sum(sale["price"] for sale in sales if sale["currency"] == coin),
        sum(licences.claimed(token, table.tree_size, n, coin) for n in world.node_owners),
        sum(
            e["args"]["amount"]
            for e in withdrawn
            if (e["args"]["currency"], e["args"]["account"]) == (coin, world.publisher)
        ),
        int(world.coin.view("balanceOf", licences.address)),
    )


def account_key(index: int) -> bytes:
    """eth-tester's account ``index`` has private key ``index + 1``."""
    return (index + 1).to_bytes(32, "big")
