"""Data assets on chain: gas per mint, offer, purchase and claim, and the purchase-to-entitlement
delay, on a real node (anvil) started for the run.

Baseline (same run, same node): the gas of anchoring one checkpoint in the AnchorRegistry,
what every batch already pays. Each figure is also given as a ratio to it. Claims are measured
on contribution tables of 12 and 1,000 nodes (a path grows with log2 of the nodes).

The delay: a marketplace's licence sync runs in its thread every ``interval`` seconds, as
``rda serve --chain-interval`` does; for each purchase, the time from the mined receipt to the
buyer's API key being entitled (read the way a request reads it). Goal: within one interval.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from infra.chain import ChainConfig, connect, start_anvil
from infra.tools import free_port
from market.entitlements import LicenceSync, wallet_key
from market.licence_chain import NATIVE, DataLicences, TestStablecoin
from market.onchain import every
from market.store import MarketStore
from proofs.anchor import AnchorRegistry
from proofs.contributions import ContributionTable
from proofs.data_asset import Contract, DataAsset
from streaming.config import RunSettings

TRIGGER_INTERVAL = RunSettings().interval  # `rda run`'s default seconds between micro-batches
HOSTILE = Path(__file__).parents[1] / "tests" / "contracts" / "Hostile.json"


class _Nodes(Contract):  # an open ERC-721 standing in for the node registry's ownerOf
    artifact_path = HOSTILE
    artifact_name = "OpenNodes"


def run(quick: bool = False) -> dict:
    purchases = 5 if quick else 20
    interval = 0.5 if quick else 1.0
    with tempfile.TemporaryDirectory(prefix="rda-bench-assets-") as directory:
        node = start_anvil(free_port(), Path(directory) / "anvil")
        try:
            w3 = connect(ChainConfig("anvil", port=node.port))
            gas, world = _gas(w3)
            delays = _delays(w3, world, Path(directory), purchases, interval)
        finally:
            node.stop()
    anchor = gas["anchor_checkpoint (baseline)"]
    summary = _summary(gas, delays, purchases, interval)
    return {
        "name": "data_assets",
        "summary": summary,
        "chain": "anvil (prague)",
        "gas": gas,
        "gas_vs_anchor": {k: round(v / anchor, 2) for k, v in gas.items()},
        "entitlement_delay_s": {
            "interval_s": interval,
            "purchases": purchases,
            "median": round(statistics.median(delays), 3),
            "max": round(max(delays), 3),
            "max_over_sync_interval": round(max(delays) / interval, 2),
            "pipeline_trigger_interval_s": TRIGGER_INTERVAL,
            "max_over_trigger_interval": round(max(delays) / TRIGGER_INTERVAL, 2),
            "goal": "≤ 1 trigger interval after the block",
        },
    }


def _summary(gas: dict[str, int], delays: list[float], purchases: int, interval: float) -> str:
    anchor = gas["anchor_checkpoint (baseline)"]
    ratios = ", ".join(f"{k} {v:,} ({v / anchor:.2f}x)" for k, v in gas.items() if v != anchor)
    slowest = max(delays)
    return (
        f"gas against an anchor's {anchor:,} on anvil: {ratios}; a purchase's entitlement "
        f"reached the pipeline in median {statistics.median(delays):.2f} s, at most "
        f"{slowest:.2f} s ({slowest / TRIGGER_INTERVAL:.2f}x the {TRIGGER_INTERVAL:g} s "
        f"trigger; goal ≤ 1), {purchases} purchases synced every {interval:g} s"
    )


def _gas(w3) -> tuple[dict[str, int], dict]:
    accounts = w3.eth.accounts
    registry = AnchorRegistry.deploy(w3)
    asset = DataAsset.deploy(w3)
    nodes = _Nodes.deploy(w3)
    licences = DataLicences.deploy(w3, asset.address, nodes.address)
    coin = TestStablecoin.deploy(w3)
    gas = {
        "anchor_checkpoint (baseline)": registry.anchor(
            "a.v1", 1000, b"\x11" * 32, b"\x22" * 32
        ).gas_used
    }
    gas["deploy DataAsset"] = asset.deploy_gas
    gas["deploy DataLicences"] = licences.deploy_gas
    tables = {}
    for label, count in (("12 nodes", 12), ("1000 nodes", 1000)):
        dataset = f"bench-{count}.v1"
        rows = {f"{dataset}/n{i:04d}": 10 + i % 7 for i in range(count)}
        table = ContributionTable(dataset, sum(rows.values()), rows)
        registry.anchor(dataset, table.tree_size, b"\x11" * 32, b"\x22" * 32)
        minted = asset.mint(
            registry.address,
            dataset,
            table.tree_size,
            b"\x05" * 32,
            3000,
            table.root(),
            table.node_rows,
        )
        gas[f"mint ({label})"] = minted.gas_used
        tables[label] = (int(minted.value), table)
    token, table = tables["12 nodes"]
    registry.anchor(
        table.dataset, table.tree_size + 10, b"\x33" * 32, b"\x44" * 32, table.tree_size
    )
    commit = asset.commit_contributions(
        [(token, table.tree_size + 10, table.root(), table.node_rows)]
    )
    gas["commitContributions (1 checkpoint)"] = commit.gas_used
    # sales now license the new checkpoint: its table (the same rows) is what claims prove
    tables["12 nodes"] = (
        token,
        ContributionTable(table.dataset, table.tree_size + 10, table.rows_by_node),
    )
    native = licences.create_offer(token, NATIVE, 10**16, 3600, b"\x07" * 32)
    gas["offer"] = native.gas_used
    dollars = int(licences.create_offer(token, coin.address, 12_500_000, 3600, b"\x07" * 32).value)
    buyer = licences.as_sender(accounts[1])
    gas["purchase (native coin, first)"] = buyer.buy(int(native.value)).gas_used
    gas["purchase (native coin, renewal)"] = buyer.buy(int(native.value)).gas_used
    coin.send("mint", accounts[2], 10**12)
    payer = licences.as_sender(accounts[2])
    gas["approve (ERC-20)"] = (
        coin.as_sender(accounts[2]).send("approve", licences.address, 10**12).gas_used
    )
    gas["purchase (ERC-20)"] = payer.buy(dollars).gas_used
    for label, (token_id, table_) in tables.items():
        first = sorted(table_.rows_by_node)[0]
        nodes.send("mint", accounts[3], first)
        licences.create_offer(token_id, NATIVE, 10**16, 3600, b"\x07" * 32)
        payer.buy(int(licences.view("offerCount")))
        gas[f"claim ({label})"] = (
            licences.as_sender(accounts[3]).claim(token_id, table_, first).gas_used
        )
    gas["withdraw (native coin)"] = licences.withdraw(NATIVE).gas_used
    return gas, {
        "asset": asset,
        "licences": licences,
        "registry": registry,
        "token": token,
        "offer": int(native.value),
    }


def _delays(w3, world: dict, directory: Path, purchases: int, interval: float) -> list[float]:
    store = MarketStore(directory / "market.duckdb")
    registry = world["registry"]
    sync = LicenceSync(store, world["licences"], world["asset"], registry.address, ["bench-12.v1"])
    stop = threading.Event()
    sync.sync()
    thread = threading.Thread(target=every, args=(interval, stop, sync.sync), daemon=True)
    thread.start()
    delays = []
    try:
        for i in range(purchases):
            buyer = w3.eth.accounts[4 + i % 5]
            key = wallet_key(store, buyer)
            w3.provider.make_request("evm_increaseTime", [3601])  # the last licence has expired
            w3.provider.make_request("evm_mine", [])
            world["licences"].as_sender(buyer).buy(world["offer"])
            mined = time.monotonic()
            while "bench-12.v1" not in store.snapshot().buyer_for_key(key).datasets:
                time.sleep(0.005)
            delays.append(time.monotonic() - mined)
            time.sleep((i % 3) * interval / 3)  # purchases at different points of the cycle
    finally:
        stop.set()
        thread.join(timeout=5)
    return delays
