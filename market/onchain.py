"""The marketplace's view of the chain: assets, offers, sign-in and the licence sync together.

``rda serve --rpc-url`` (or a test, with the in-process EVM) builds a ``ChainMarket`` from the
data directory's ``published/data-assets.json``; the service then adds each dataset's token,
owner and offers to its page, prepares the transactions a wallet sends to buy, signs buyers in
with their wallet, and a background thread runs the licence sync every ``interval_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from market.entitlements import KEPT_BLOCKS, MAX_BLOCKS_PER_READ, LicenceSync, licences_of
from market.licence_chain import DataLicences, Offer, buy_transactions
from market.policy import QueryRefused
from market.siwe import SignInPolicy, SignInRefused, issue, open_nonces, sign_in
from market.store import Buyer, MarketStore
from proofs.data_asset import DataAsset
from sinks.layout import DataLayout
from streaming.assets import AssetRecord

log = logging.getLogger("rda.market")
MAX_OPEN_NONCES = 10_000


def every(interval_s: float, stop: threading.Event, work) -> None:
    """Run ``work`` at a fixed rate (a start every ``interval_s``, however long it took) until
    ``stop``: a purchase is seen at most one interval plus one sync after its block."""
    next_start = time.monotonic()
    while True:
        next_start += interval_s
        if stop.wait(max(0.0, next_start - time.monotonic())):
            return
        work()
        next_start = max(next_start, time.monotonic() - interval_s)  # no burst after a stall


class ChainUnavailable(RuntimeError):
    """No asset record for this chain, or the chain does not answer."""


def check_contracts(w3: Any, record: AssetRecord) -> None:
    """The record's chain is the node's, and its addresses hold the contracts it says, wired
    together: DataLicences sells the recorded DataAsset's tokens and pays the recorded node
    registry. A record edited to point elsewhere (or a node on another chain) is refused
    before any event is read from it."""
    if record.chain_id != w3.eth.chain_id:
        raise ChainUnavailable(
            f"the assets are on chain {record.chain_id}, the node answers chain {w3.eth.chain_id}"
        )
    if record.data_licences is None:
        raise ChainUnavailable("no DataLicences contract recorded: run `rda market mint`")
    for name, address in (("DataAsset", record.data_asset), ("DataLicences", record.data_licences)):
        if not w3.eth.get_code(address):
            raise ChainUnavailable(f"no {name} contract at {address} on chain {record.chain_id}")
    licences = DataLicences(w3, record.data_licences)
    try:
        sells, version = licences.view("assets"), licences.view("licencesVersion")
        asset_version = DataAsset(w3, record.data_asset).view("assetVersion")
        pays = licences.node_registry()
    except Exception:  # not the contracts the record names: no such functions
        raise ChainUnavailable(
            f"{record.data_licences} and {record.data_asset} are not DataLicences and DataAsset"
        ) from None
    if (version, asset_version) != (1, 1) or sells.lower() != record.data_asset.lower():
        raise ChainUnavailable(
            f"DataLicences {record.data_licences} sells {sells}'s tokens, not {record.data_asset}"
        )
    if record.node_registry and pays.lower() != record.node_registry.lower():
        raise ChainUnavailable(
            f"DataLicences {record.data_licences} pays node registry {pays}, "
            f"not {record.node_registry}"
        )


@dataclass
class ChainMarket:
    w3: Any
    record: AssetRecord
    store: MarketStore
    policy: SignInPolicy
    interval_s: float = 1.0
    asset: DataAsset = field(init=False)
    licences: DataLicences = field(init=False)
    sync: LicenceSync = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _offer_lock: threading.Lock = field(default_factory=threading.Lock)
    _offer_locks: dict[int, threading.Lock] = field(default_factory=dict)  # one a token
    # token -> (the block its offers' logs were read through, the ids of its offers)
    _offer_scan: dict[int, tuple[int, set[int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_contracts(self.w3, self.record)
        self.asset = DataAsset(self.w3, self.record.data_asset)
        self.licences = DataLicences(self.w3, self.record.data_licences)
        self.sync = LicenceSync(
            self.store, self.licences, self.asset, self.record.registry, list(self.record.tokens)
        )

    @classmethod
    def open(
        cls, w3: Any, data_dir: Path, store: MarketStore, origin: str, interval_s: float = 1.0
    ) -> ChainMarket:
        record = AssetRecord.load(DataLayout(data_dir))
        if record is None:
            raise ChainUnavailable(f"{data_dir} has no minted assets (published/data-assets.json)")
        domain = origin.split("://", 1)[1]
        return cls(w3, record, store, SignInPolicy(domain, origin, record.chain_id), interval_s)

    # -- the background sync ---------------------------------------------------------------

    def start(self) -> None:
        self.sync.sync()
        self._thread = threading.Thread(target=self._loop, name="rda-licence-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        every(self.interval_s, self._stop, self._sync_once)

    def _sync_once(self) -> None:
        try:
            self.sync.sync()
        except Exception as error:  # the node or the store is away: try at the next tick
            log.warning("licence sync failed: %s", error)

    # -- what the service asks -------------------------------------------------------------

    def sign_in_nonce(self, address: Any) -> dict[str, Any]:
        if not isinstance(address, str):
            raise QueryRefused("bad_request", 'send {"address": "0x…"}')
        if open_nonces(self.store) >= MAX_OPEN_NONCES:
            raise QueryRefused("busy", "too many sign-ins in progress: try again shortly", 503)
        try:
            message = issue(self.store, self.policy, address)
        except ValueError as error:
            raise QueryRefused("bad_request", str(error)) from None
        return {"message": message, "chain_id": self.policy.chain_id}

    def sign_in(self, message: Any, signature: Any) -> dict[str, Any]:
        try:
            return sign_in(self.store, self.policy, message, signature)
        except SignInRefused as refused:
            raise QueryRefused("sign_in_refused", str(refused), 401) from None

    def asset_view(self, dataset: str, buyer: Buyer) -> dict[str, Any] | None:
        """Token id, owner, terms, offers and the buyer's licence, read from the chain."""
        token = self.record.tokens.get(dataset)
        if token is None:
            return None
        info = self.asset.info(token)
        offers = []
        for offer in self._offers_of(token):
            if not offer.active or offer.seller != info.owner:
                continue
            try:
                offers.append(self.licences.describe_offer(offer))
            except Exception as error:  # a currency without decimals(): no price to show
                log.warning("offer %d not shown: %s", offer.offer_id, error)
        expiry = self.licences.expires_at(buyer.wallet, token) if buyer.wallet else 0
        return {
            "chain_id": self.record.chain_id,
            "contract": self.asset.address,
            "token_id": token,
            "owner": info.owner,
            "registry": info.registry,
            "manifest_sha256": info.manifest_hash.hex(),
            "terms_sha256": info.terms_hash.hex(),
            "node_share_bps": info.node_share_bps,
            "licensed_tree_size": info.latest_tree_size,
            "licences_contract": self.licences.address,
            "offers": offers,
            "licence": {"wallet": buyer.wallet, "expires_at": expiry or None},
        }

    def _offers_of(self, token: int) -> list[Offer]:
        """The offers made for ``token``, as they stand now. Their ids come from the chain's
        logs, read once (and again over the last ``KEPT_BLOCKS``, where a reorg may have
        changed them): the contract is shared, and reading each of its offers made a page cost
        one call per offer anyone ever made (600 made by one stranger: 4.6 s a page)."""
        with self._offer_lock:  # one token's scan waits for no other token's
            lock = self._offer_locks.setdefault(token, threading.Lock())
        with lock:
            scanned, ids = self._offer_scan.get(token, (self.sync.start_block - 1, set()))
            head = int(self.w3.eth.block_number)
            first = max(self.sync.start_block, scanned + 1 - KEPT_BLOCKS)
            for start in range(first, head + 1, MAX_BLOCKS_PER_READ):
                end = min(start + MAX_BLOCKS_PER_READ - 1, head)
                ids = ids | self.licences.offer_ids(token, start, end)
            offers = []
            for offer_id in sorted(ids):
                try:
                    offers.append(self.licences.offer(offer_id))
                except ValueError:  # a reorg took it away: no offer by that id (any more)
                    ids = ids - {offer_id}
            self._offer_scan[token] = (head, ids)
        return [o for o in offers if o.asset_id == token]  # one a reorg gave another asset

    def buy(self, dataset: str, buyer: Buyer, offer_id: Any) -> dict[str, Any]:
        if buyer.wallet is None:
            raise QueryRefused("wallet_required", "sign in with your wallet to buy on chain", 403)
        if isinstance(offer_id, bool) or not isinstance(offer_id, int) or offer_id < 1:
            raise QueryRefused("bad_request", 'send {"offer_id": n}')
        token = self.record.tokens.get(dataset)
        try:
            offer = self.licences.offer(offer_id)
        except ValueError:
            offer = None
        if offer is None or offer.asset_id != token or not offer.active:
            raise QueryRefused("not_found", f"no open offer {offer_id} for {dataset}", 404)
        try:
            described = self.licences.describe_offer(offer)
        except Exception:  # its currency has no decimals(): not an offer anyone can read
            refused = f"offer {offer_id} has no readable price"
            raise QueryRefused("not_found", refused, 404) from None
        return {
            "transactions": buy_transactions(self.licences, offer, buyer.wallet),
            "offer": described,
        }

    def licences_of(self, buyer: Buyer) -> list[dict[str, Any]]:
        return licences_of(self.store, buyer.wallet) if buyer.wallet else []

    def wait_synced(self, block: int, timeout_s: float = 30.0) -> None:
        """Until the sync has read ``block`` (tests and ``rda bench``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.sync.sync().head >= block:
                return
            time.sleep(0.05)
        raise TimeoutError(f"block {block} not synced in {timeout_s}s")
