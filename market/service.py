"""The marketplace service: authenticate a buyer, list assets, run entitled SQL.

Shared by ``rda query`` (in-process) and ``rda serve`` (HTTP). It reads the pipeline's catalog
and the marketplace store once, and reloads either when its file changes, so a grant, a revoke
or a newly anchored checkpoint takes effect on the next request without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from market.assets import Asset, CatalogUnavailable, load_assets, read_quality_report
from market.datacard import (
    CatalogFacts,
    catalog_facts,
    checkpoint_history,
    data_card,
    publisher,
    summarize_report,
)
from market.execution import QueryJob, QueryOutput, execute
from market.export import croissant, data_package
from market.licenses import license_terms
from market.listings import build_listing, time_column
from market.policy import QueryRefused, check_query
from market.pool import PoolLimits, QueryPool
from market.profiles import column_profiles, example_queries, sample_rows
from market.results import FORMATS
from market.sandbox import Limits, Sandbox, asset_parts
from market.store import Buyer, MarketSnapshot, MarketStore, market_path
from proofs.identity import FILE_NAME as IDENTITY_FILE
from proofs.identity import IdentityError, read_identity_file
from sinks.layout import DataLayout

EXPORT_FORMATS = ("datapackage", "croissant")
log = logging.getLogger("rda.market")


class Marketplace:
    """With ``pool`` (``rda serve``), queries run in worker processes shared fairly between
    buyers (``market.pool``); without (``rda query``), in this process."""

    def __init__(
        self, data_dir: Path, limits: Limits | None = None, pool: PoolLimits | None = None
    ) -> None:
        self.data_dir = data_dir
        self.limits = limits or Limits()
        self.store = MarketStore(market_path(data_dir))
        self.sandbox = Sandbox(self.limits)
        self.pool = QueryPool(self.limits, pool) if pool is not None else None
        self._catalog_path = DataLayout(data_dir).catalog
        self._lock = threading.Lock()
        self._assets: dict[str, Asset] | None = None
        self._assets_stamp: object = None
        self._market = MarketSnapshot()
        self._market_stamp: object = None
        # The marketplace file changed but could not be read (the seller's `rda market` held
        # it): a key it does not know may be one added since, told 401 "unknown" before.
        self._market_behind = False
        self._listings: dict[tuple, dict[str, Any]] = {}
        self._details: dict[tuple, dict[str, Any]] = {}
        self._facts = CatalogFacts()
        self.chain: Any = None  # market.onchain.ChainMarket: assets, offers, wallet sign-in

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.sandbox.close()

    # -- state, reloaded when its file changes -------------------------------------------

    def assets(self) -> dict[str, Asset]:
        stamp = _stamp(self._catalog_path)
        with self._lock:
            if self._assets is None or stamp != self._assets_stamp:
                try:
                    self._assets = load_assets(self.data_dir)
                    self._facts = catalog_facts(self.data_dir)
                    self._assets_stamp = stamp
                except CatalogUnavailable as error:
                    if self._assets is None:  # keep serving the last good state otherwise
                        raise QueryRefused("catalog_unavailable", str(error), 503) from None
            return self._assets

    def market(self) -> MarketSnapshot:
        stamp = _stamp(self.store.path)
        with self._lock:
            if stamp != self._market_stamp:
                try:
                    self._market = self.store.snapshot()
                    self._market_stamp = stamp
                    self._market_behind = False
                except duckdb.Error:  # locked by a concurrent `rda market` write: retry later
                    self._market_behind = True
            return self._market

    # -- buyers --------------------------------------------------------------------------

    def authenticate(self, api_key: str | None) -> Buyer:
        if not api_key:
            raise QueryRefused(
                "unauthorized", "an API key is required (Authorization: Bearer …)", 401
            )
        buyer = self.market().buyer_for_key(api_key)
        if buyer is None and self._market_behind:  # the key may be newer than what was read
            raise QueryRefused("busy", "the marketplace is busy: try again shortly", 503)
        if buyer is None:
            raise QueryRefused("unauthorized", "unknown API key", 401)
        return buyer

    def licensed_assets(self, buyer: Buyer) -> list[Asset]:
        assets = self.assets()
        return [assets[d] for d in sorted(buyer.datasets) if d in assets]

    # -- listings ------------------------------------------------------------------------

    def listings(self, buyer: Buyer) -> list[dict[str, Any]]:
        return [self.listing(buyer, dataset) for dataset in self.assets()]

    def listing(self, buyer: Buyer, dataset: str, with_report: bool = False) -> dict[str, Any]:
        """A listing; ``with_report`` (the dataset page) adds the data card, profiles, sample
        rows, example queries, licence, publisher, checkpoint history and quality report."""
        asset = self._asset(dataset)
        terms = self.market().terms_for(dataset)
        key = (dataset, asset.checkpoint.tree_size, terms)
        cached = latest_only(self._listings, key, lambda: build_listing(asset, terms))
        listing = {**cached, "licensed": dataset in buyer.datasets}
        if with_report:
            detail = latest_only(self._details, key, lambda: self._detail(asset, cached, terms))
            request = self.market().requests.get((buyer.name, dataset))
            listing.update(detail, access_request=request)
            if self.chain is not None:
                listing["asset"] = self.chain.asset_view(dataset, buyer)
        return listing

    def _detail(self, asset: Asset, listing: dict[str, Any], terms: Any) -> dict[str, Any]:
        history = checkpoint_history(asset, self._facts)
        parts = asset_parts(asset)  # once for both readers: one compaction budget, not two
        report = read_quality_report(asset)
        return {
            "license_terms": license_terms(terms),
            "data_card": data_card(asset, self._facts, listing["coverage"], history),
            "checkpoints": history,
            "publisher": publisher(asset),
            "profiles": column_profiles(asset, parts),
            "sample": sample_rows(asset, parts=parts),
            "examples": example_queries(asset, time_column(asset.schema)),
            "quality_report": summarize_report(report, asset.checkpoint.tree_size),
        }

    def request_access(self, buyer: Buyer, dataset: str, message: str) -> dict[str, Any]:
        self._asset(dataset)
        if dataset in buyer.datasets:
            raise QueryRefused("already_licensed", f"you already hold a licence to {dataset}", 409)
        try:
            return self.store.request_access(buyer.name, dataset, message)
        except duckdb.IOException:  # the seller's `rda market` holds the store's write lock
            raise QueryRefused("busy", "the marketplace is busy: try again shortly", 503) from None

    def export(self, dataset: str, fmt: str) -> dict[str, Any]:
        if fmt not in EXPORT_FORMATS:
            raise QueryRefused("bad_request", f"export format must be one of {EXPORT_FORMATS}")
        asset = self._asset(dataset)
        terms = self.market().terms_for(dataset)
        listing = build_listing(asset, terms)
        build = data_package if fmt == "datapackage" else croissant
        return build(asset, terms, listing)

    def publisher_identity(self) -> dict[str, Any]:
        """The publisher identity document published with the data, offered for pinning: a
        buyer compares its SHA-256 with what the publisher announces before trusting it."""
        path = DataLayout(self.data_dir).published / IDENTITY_FILE
        try:
            identity = read_identity_file(path)
        except IdentityError:  # offered for pinning: never a copy its verifier would refuse
            log.error("the publisher identity %s is damaged: not offered", path)
            message = "the publisher identity here is damaged; ask the publisher for it"
            raise QueryRefused("unavailable", message, 503) from None
        if identity is None:
            raise QueryRefused("not_found", "no publisher identity is published here", 404)
        raw = identity.raw
        return {"identity": raw.decode(), "sha256": hashlib.sha256(raw).hexdigest()}

    def _asset(self, dataset: str) -> Asset:
        asset = self.assets().get(dataset)
        if asset is None:
            raise QueryRefused("not_found", f"no anchored dataset {dataset!r}", 404)
        return asset

    # -- queries -------------------------------------------------------------------------

    def query(
        self,
        buyer: Buyer,
        sql: str,
        fmt: str = "json",
        proofs: bool = False,
        max_rows: int | None = None,
    ) -> QueryOutput:
        if fmt not in FORMATS:
            raise QueryRefused("bad_request", f"format must be one of {', '.join(FORMATS)}")
        if max_rows is not None and max_rows < 1:
            raise QueryRefused("bad_request", "max_rows must be a positive integer")
        if proofs and fmt != "json":
            raise QueryRefused("bad_request", "proofs come with format=json")
        licensed = {a.view: a for a in self.licensed_assets(buyer)}
        checked = check_query(sql, set(licensed))
        if not licensed:  # fairness is per key, and a wallet's sign-in makes keys for free:
            # ten such keys ran heavy SQL over VALUES lists and held a buyer's 6 ms query 15 s
            raise QueryRefused(
                "no_licence",
                "you hold no licence: queries run over the datasets you hold a licence to "
                "(POST /api/access-requests, or buy one on chain)",
                403,
            )
        job = QueryJob(
            checked.sql, tuple(licensed[v] for v in checked.views), fmt, max_rows, proofs
        )
        if self.pool is not None:
            return self.pool.run(buyer.name, job)
        return execute(job, self.sandbox)


def latest_only(cache: dict[tuple, Any], key: tuple, make: Callable[[], Any]) -> Any:
    """``cache[key]`` (``key[0]``: a dataset), made now if missing; the dataset's entries for
    other keys (earlier checkpoints, other terms) are dropped then: a stream makes a checkpoint
    a second, and an entry for each one grew the cache for as long as the market ran."""
    found = cache.get(key)
    if found is None:
        for other in [k for k in list(cache) if k[0] == key[0]]:  # list(): a snapshot
            cache.pop(other, None)
        found = cache[key] = make()
    return found


def _stamp(path: Path) -> object:
    """Changes whenever a DuckDB file or its write-ahead log changes."""
    stamps = []
    for candidate in (path, path.with_name(path.name + ".wal")):
        try:
            st = candidate.stat()
            stamps.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            stamps.append(None)
    return tuple(stamps)
