"""Data assets end to end on a real node (anvil): the CLI, the served marketplace's licence sync
through a reorg, and the page's buy flow in Chromium with a wallet behind EIP-1193.

The pipeline's demo data directory is anchored on anvil; contracts, transactions, events and
blocks are anvil's. The wallet in the page is an object injected into headless Chromium whose
``request`` goes to anvil (its unlocked account signs and sends), as a browser wallet's does.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from asset_support import (
    DATASET,
    NamedToken,
    advance_time,
    build_world,
    offer_in_dollars,
    settle,
)
from test_market_web import CHROMIUM_ARGS, TIMEOUT_MS, shot

from cli.main import main as rda
from infra.tools import ensure_chromium
from market.http import start_server
from market.onchain import ChainMarket
from market.service import Marketplace
from proofs.contributions import ContributionTable
from proofs.contributions import table_path as contribution_path
from streaming.chain import open_chain

pytestmark = pytest.mark.anvil
HOUR = 3600


@pytest.fixture(scope="module")
def world(anvil, demo_dir, tmp_path_factory):
    chain = open_chain("anvil", anvil.rpc_url, None)
    accounts = chain.registry.w3.eth.accounts
    world = build_world(chain, demo_dir, tmp_path_factory.mktemp("anvil-assets"), accounts[5:8])
    for buyer in accounts[1:4]:
        world.coin.send("mint", buyer, 10**9)
    return world


@pytest.fixture(scope="module")
def served(world):
    """``rda serve --rpc-url``: the page and API with the licence sync every 0.2 s."""
    market = Marketplace(world.data_dir)
    server = start_server(market)
    market.chain = ChainMarket.open(world.w3, world.data_dir, market.store, server.url, 0.2)
    market.chain.start()
    yield server
    market.chain.stop()
    server.shutdown()
    server.server_close()
    market.close()


def call(server, path, key=None, body=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def rda_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert rda([*args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def wallet_sign_in(world, server, address) -> str:
    """EIP-4361 through the API, signed by anvil's account (``personal_sign``)."""
    message = call(server, "/api/siwe/nonce", body={"address": address})["message"]
    signature = world.w3.provider.make_request(
        "personal_sign", ["0x" + message.encode().hex(), address]
    )["result"]
    return call(server, "/api/siwe/verify", body={"message": message, "signature": signature})[
        "api_key"
    ]


def wait_for(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_offer_buy_licences_claim_and_verify_with_the_cli(world, anvil, capsys):
    common = ["--data-dir", str(world.data_dir), "--rpc-url", anvil.rpc_url]
    minted = rda_json(capsys, "market", "mint", "node_heartbeat.v1", "--node-share", "20", *common)
    assert (minted["token_id"], minted["data_asset"]) == (2, world.record.data_asset)
    assert minted["nodes"] > 0 and minted["gas_used"] > 0
    again = rda_json(capsys, "market", "mint", "node_heartbeat.v1", *common)
    assert (again["token_id"], again["gas_used"]) == (2, 0)  # minted once
    offer = rda_json(
        capsys, "market", "offer", DATASET, "--price", "12.50", "--duration", "1h", *common
    )
    assert (offer["price"], offer["symbol"], offer["decimals"]) == ("12.5", "tUSD", 6)
    buyer = world.w3.eth.accounts[2]
    bought = rda_json(capsys, "market", "buy", str(offer["offer_id"]), "--from", buyer, *common)
    held = rda_json(capsys, "market", "licences", "--wallet", buyer, *common)["licences"]
    assert [(h["dataset"], h["expires_at"], h["valid"]) for h in held] == [
        (DATASET, bought["expires_at"], True)
    ]
    node = sorted(world.node_owners)[0]
    stranger = world.w3.eth.accounts[9]
    assert rda(["market", "claim", DATASET, "--node", node, "--from", stranger, *common]) == 2
    assert f"node {node} is owned by {world.node_owners[node]}, not {stranger}" in (
        capsys.readouterr().err
    )
    claimed = rda_json(capsys, "market", "claim", DATASET, "--node", node, *common)
    assert claimed["owner"] == world.node_owners[node]  # sent from the registry's owner
    assert (
        int(claimed["amount_units"])
        == 12_500_000 * 3000 // 10_000 * claimed["rows"] // world.minted.table.node_rows
    )
    verdict = rda_json(
        capsys, "verify", "--contribution", node, "--dataset", DATASET, "--registry",
        world.chain.contract, *common,
    )  # fmt: skip
    assert verdict["verdict"] == "VERIFIED", verdict
    assert_a_raised_count_is_named(world, node, common, capsys)
    assert rda(["market", "claim", DATASET, "--node", node, *common]) == 2
    assert "NothingToClaim" in capsys.readouterr().err  # one line, no traceback


def assert_a_raised_count_is_named(world, node, common, capsys) -> None:
    """``rda verify --contribution`` on a table whose count for ``node`` was raised."""
    table = world.minted.table
    path = contribution_path(world.data_dir / "published" / DATASET, table.tree_size)
    original = path.read_bytes()
    other = next(n for n in sorted(table.rows_by_node) if n != node)
    raised = {**table.rows_by_node, node: table.rows_by_node[node] + 7}
    raised[other] -= 7
    path.write_bytes(ContributionTable(DATASET, table.tree_size, raised).to_bytes())
    try:
        capsys.readouterr()
        code = rda(["verify", "--contribution", node, "--dataset", DATASET, "--registry",
                    world.chain.contract, "--json", *common])  # fmt: skip
    finally:
        path.write_bytes(original)
    verdict = json.loads(capsys.readouterr().out)
    assert (code, verdict["verdict"]) == (1, "NOT VERIFIED")
    shown = json.dumps(verdict)
    assert f"node {node}: table says {raised[node]}, the rows say {table.rows_by_node[node]}" in (
        shown
    )


def test_the_cli_refuses_an_asset_record_for_another_chain_in_one_line(world, anvil, capsys):
    path = world.data_dir / "published" / "data-assets.json"
    original = path.read_text()
    record = json.loads(original)
    path.write_text(json.dumps({**record, "chain_id": 1}))
    try:
        code = rda(["market", "licences", "--data-dir", str(world.data_dir), "--rpc-url",
                    anvil.rpc_url])  # fmt: skip
    finally:
        path.write_text(original)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "on chain 31337" in err, err


def test_mint_refuses_a_damaged_publisher_identity_in_one_line(world, anvil, capsys):
    """Not taken for "the identity names no node registry": a DataLicences deployed so would
    pay the nodes' owners nothing, for good."""
    identity = world.data_dir / "published" / "publisher-identity.json"
    record = world.data_dir / "published" / "data-assets.json"
    original, recorded = identity.read_bytes(), record.read_bytes()
    identity.write_bytes(original[:-10])
    try:
        code = rda(["market", "mint", "node_heartbeat.v1", "--data-dir", str(world.data_dir),
                    "--rpc-url", anvil.rpc_url])  # fmt: skip
    finally:
        identity.write_bytes(original)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and f"{identity} is not a valid publisher identity" in err, err
    assert "pass --node-registry" in err
    assert record.read_bytes() == recorded


def test_the_served_marketplace_grants_from_events_and_undoes_a_reorged_purchase(world, served):
    buyer = world.w3.eth.accounts[3]
    key = wallet_sign_in(world, served, buyer)
    assert call(served, "/api/me", key)["datasets"] == []
    offer = offer_in_dollars(world, "5", HOUR)
    snapshot = world.w3.provider.make_request("evm_snapshot", [])["result"]
    sent = world.licences.as_sender(buyer).buy(offer)
    wait_for(lambda: call(served, "/api/me", key)["datasets"] == [DATASET])  # rda bench: delay
    answer = call(served, "/api/query", key, {"sql": "SELECT count(*) AS n FROM radio_kpi_v1"})
    assert answer["rows"] == [{"n": world.minted.tree_size}]
    rows = call(served, f"/api/listings/{DATASET}", key)["asset"]["licence"]
    assert rows["expires_at"] == world.w3.eth.get_block(sent.block_number)["timestamp"] + HOUR

    world.w3.provider.make_request("evm_revert", [snapshot])  # the block with the purchase goes
    for _ in range(3):
        world.w3.provider.make_request("evm_mine", [])
    wait_for(lambda: call(served, "/api/me", key)["datasets"] == [])

    again = world.licences.as_sender(buyer).buy(offer)  # bought again on the new branch
    wait_for(lambda: call(served, "/api/me", key)["datasets"] == [DATASET])
    advance_time(world.w3, HOUR + 1)
    wait_for(lambda: call(served, "/api/me", key)["datasets"] == [])
    restarted = ChainMarket.open(world.w3, world.data_dir, served.market.store, served.url)
    result = restarted.sync.sync()  # a restart reads nothing twice and keeps what it had
    assert result.added == 0 and result.dropped == 0
    held = call(served, "/api/licences", key)["licences"]
    assert [(h["tx_hash"], h["valid"]) for h in held] == [(again.tx_hash, False)]


def test_a_buyer_signs_in_and_buys_in_the_page_with_an_eip1193_wallet(world, served):
    from playwright.sync_api import sync_playwright

    buyer = world.w3.eth.accounts[1]
    marked = NamedToken.deploy(world.w3, "Evil", '<img src=x onerror="window.pwned=1">')
    world.licences.create_offer(world.minted.token_id, marked.address, 10**18, HOUR, b"\0" * 32)
    offer_in_dollars(world, "7.25", 30 * 86_400)

    def wallet_rpc(method: str, params: str) -> str:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return json.dumps({"result": [buyer]})
        return json.dumps(world.w3.provider.make_request(method, json.loads(params)))

    provider = """
      window.ethereum = { isTestWallet: true, request: async ({ method, params }) => {
        const answer = JSON.parse(await window.rdaWalletRpc(method, JSON.stringify(params || [])));
        if (answer.error) {
          throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
        }
        return answer.result;
      } };"""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(ensure_chromium()), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.expose_function("rdaWalletRpc", wallet_rpc)
        page.add_init_script(provider)
        page.goto(served.url + "/")
        page.click("#wallet-signin")
        try:
            page.wait_for_selector(".card")
        except Exception:
            raise AssertionError(page.inner_text("#error")) from None
        assert buyer in page.inner_text("#whoami")
        page.goto(served.url + "/#/datasets/" + DATASET)
        page.wait_for_selector("#asset .buy-offer")
        assert f"DataAsset #{world.minted.token_id}" in page.inner_text("#asset-token")
        assert page.inner_text("#asset-owner") == world.publisher
        shot(page, "asset-offers")
        assert page.query_selector("#asset img") is None  # a token's symbol is text
        assert "<img src=x onerr" in page.inner_text("#offers")
        assert page.evaluate("window.pwned") is None
        page.click("#offers li:last-child .buy-offer")
        page.wait_for_selector("#licence-expiry", timeout=60_000)
        shot(page, "asset-licensed")
        assert "licensed to you" in page.inner_text(".dataset-head")
        browser.close()
    assert world.licences.expires_at(buyer, world.minted.token_id) > time.time()


def test_claims_plus_the_owner_share_plus_dust_are_every_sale_exactly(world):
    """After the CLI's, the served and the page's sales (and the reorg that undid one)."""
    settled = settle(world)
    assert settled.paid_in == 12_500_000 + 5_000_000 + 7_250_000  # the reorged sale is gone
    assert settled.claims + settled.owner_share + settled.dust == settled.paid_in
    assert 0 <= settled.dust < len(world.node_owners)


def test_a_reader_s_node_needs_no_account_to_read_a_data_asset(world, anvil):
    """A public node unlocks no account: reading (what verify and the marketplace do) never
    asks for one; only sending does."""
    from web3 import HTTPProvider, Web3
    from web3.middleware.base import Web3Middleware

    from proofs.data_asset import DataAsset

    class NoAccounts(Web3Middleware):  # the node's answer to eth_accounts, as a public one's
        def wrap_make_request(self, make_request):
            def middleware(method, params):
                if method == "eth_accounts":
                    return {"jsonrpc": "2.0", "id": 0, "result": []}
                return make_request(method, params)

            return middleware

    reader = Web3(HTTPProvider(anvil.rpc_url))
    reader.middleware_onion.add(NoAccounts)
    assert reader.eth.accounts == []
    info = DataAsset(reader, world.record.data_asset).info(world.minted.token_id)
    assert info.registry == world.chain.contract
