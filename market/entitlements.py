"""SQL entitlements from chain events alone: licences bought on chain, folded into the store.

``LicenceSync.sync`` reads the ``LicencePurchased`` events of the publisher's DataLicences
contract since the last synced block and records each licence (wallet, dataset, expiry) in the
marketplace store, keyed by transaction and log index, so a repeated or restarted sync never
counts one twice. There is no admin step: a buyer's API key (bound to their wallet by EIP-4361
sign-in, ``market.siwe``) is entitled to a dataset while a licence to it has not expired, in
chain time (``MarketSnapshot.buyer_for_key``); expiry needs no event.

Only licences to this publisher's assets count: the asset must be a DataAsset token of the
recorded contract whose registry is the data directory's, for one of its datasets; anyone can
mint a token for a dataset of the same name in a registry of their own, and it grants nothing.

Reorgs: each sync records the hash of the block it synced to (the last ``KEPT_BLOCKS``). When
the chain's block at the recorded height has another hash, the newest recorded block the chain
still has is the fork point: licences from later blocks are dropped and those blocks read again.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import duckdb

from market.licence_chain import DataLicences
from market.store import KEY_PREFIX, MarketStore, hash_key
from proofs.anchor import dataset_key
from proofs.data_asset import DataAsset

log = logging.getLogger("rda.market")
KEPT_BLOCKS = 256
# Wallet buyers holding no licence kept at once: a sign-in is free (a throwaway wallet signs),
# and each made a buyer the server reads again on every change of the store (300 in a minute,
# red team). Past it, the longest-standing such buyers go; signing in again brings one back.
MAX_UNLICENSED_WALLETS = 10_000
MAX_BLOCKS_PER_READ = 2_000  # eth_getLogs ranges stay small on public nodes too


def read_chain_licences(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, dict[str, int]], int]:
    """wallet (lower case) -> dataset -> latest expiry, and the chain time of the last sync."""
    tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not {"chain_licences", "chain_sync"} <= tables:
        return {}, 0
    held: dict[str, dict[str, int]] = {}
    rows = con.execute(
        "SELECT lower(wallet), dataset, max(expires_at) FROM chain_licences GROUP BY ALL"
    ).fetchall()
    for wallet, dataset, expiry in rows:
        held.setdefault(wallet, {})[dataset] = int(expiry)
    (chain_time,) = con.execute("SELECT coalesce(max(chain_time), 0) FROM chain_sync").fetchone()
    return held, int(chain_time)


def wallet_key(store: MarketStore, wallet: str) -> str:
    """A new API key for ``wallet``'s buyer (created on first sign-in; named by the address).
    The wallet's previous key stops working."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.timezone.utc)
    with store._connect() as con:
        found = con.execute("SELECT name FROM buyers WHERE wallet = ?", [wallet]).fetchone()
        if found:
            con.execute(
                "UPDATE buyers SET key_sha256 = ?, key_hint = ? WHERE wallet = ?",
                [hash_key(api_key), api_key[:9] + "…", wallet],
            )
        else:
            _make_room(con, MAX_UNLICENSED_WALLETS - 1)
            con.execute(
                "INSERT INTO buyers (name, key_sha256, key_hint, created_at, wallet) "
                "VALUES (?, ?, ?, ?, ?)",
                [wallet, hash_key(api_key), api_key[:9] + "…", now, wallet],
            )
    return api_key


def _make_room(con: duckdb.DuckDBPyConnection, kept: int) -> None:
    """Keep the ``kept`` newest wallet buyers that hold no licence (granted or bought)."""
    con.execute(
        "DELETE FROM buyers WHERE name IN (SELECT name FROM buyers b WHERE wallet IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM entitlements e WHERE e.buyer = b.name) "
        "AND NOT EXISTS (SELECT 1 FROM chain_licences c WHERE lower(c.wallet) = lower(b.wallet)) "
        "ORDER BY created_at DESC, name OFFSET ?)",
        [kept],
    )


@dataclass(frozen=True)
class SyncResult:
    head: int
    added: int
    dropped: int  # licences from blocks a reorg replaced
    chain_time: int


class LicenceSync:
    """Folds one DataLicences contract's purchases into the store, for one publisher."""

    def __init__(
        self,
        store: MarketStore,
        licences: DataLicences,
        asset: DataAsset,
        registry: str,
        datasets: list[str],
        start_block: int = 0,
    ) -> None:
        self.store = store
        self.licences = licences
        self.asset = asset
        self.registry = registry.lower()
        self.by_dataset_id = {dataset_key(d): d for d in datasets}
        self.start_block = start_block
        self.w3 = licences.w3
        self._assets: dict[int, str | None] = {}
        self._tokens_of: dict[bytes, int] = {}  # dataset id -> its asset's token id

    def sync(self) -> SyncResult:
        """Read new blocks (after undoing a reorg); record their licences. Idempotent.

        The store is held only to read the cursor and to write the result, never while the
        node is asked (requests read the store meanwhile)."""
        head = self.w3.eth.get_block("latest")
        with self.store._connect() as con:
            row = con.execute(
                "SELECT synced_block FROM chain_sync WHERE contract = ?", [self.licences.address]
            ).fetchone()
            kept = con.execute(
                "SELECT number, hash FROM chain_blocks ORDER BY number DESC"
            ).fetchall()
        synced = self.start_block - 1 if row is None else self._fork_point(kept)
        events, tokens = [], self._tokens()
        for start in range(
            max(synced + 1, self.start_block), head["number"] + 1, MAX_BLOCKS_PER_READ
        ):
            end = min(start + MAX_BLOCKS_PER_READ - 1, head["number"])
            events += [
                (e, self._dataset_of(int(e["args"]["assetId"])))
                for e in self.licences.purchases(start, end, tokens)
            ]
        with self.store._connect() as con:
            dropped = 0
            if row is not None and synced != row[0]:
                dropped = len(
                    con.execute(
                        "DELETE FROM chain_licences WHERE block_number > ? RETURNING tx_hash",
                        [synced],
                    ).fetchall()
                )
                con.execute("DELETE FROM chain_blocks WHERE number > ?", [synced])
                log.warning(
                    "chain reorganized below block %d: read again from %d", row[0], synced + 1
                )
            added = sum(self._record(con, event, dataset) for event, dataset in events if dataset)
            self._remember(con, head["number"], _hex(head["hash"]), int(head["timestamp"]))
        if added or dropped:
            log.info("licences: %d added, %d dropped by a reorg", added, dropped)
        return SyncResult(head["number"], added, dropped, int(head["timestamp"]))

    def _fork_point(self, kept: list[tuple[int, str]]) -> int:
        """The newest recorded block the chain still has (-1: none): nothing above it holds."""
        for number, recorded in kept:
            block = self._block(number)
            if block is not None and _hex(block["hash"]) == recorded:
                return number
        return self.start_block - 1

    def _block(self, number: int) -> Any:
        try:
            return self.w3.eth.get_block(number)
        except Exception:  # the chain is shorter now (web3 raises BlockNotFound)
            return None

    def _record(self, con: duckdb.DuckDBPyConnection, event: Any, dataset: str) -> int:
        args = event["args"]
        found = con.execute(
            "INSERT INTO chain_licences VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING tx_hash",
            [
                _hex(event["transactionHash"]),
                int(event["logIndex"]),
                int(event["blockNumber"]),
                _hex(event["blockHash"]),
                str(args["buyer"]).lower(),
                int(args["assetId"]),
                dataset,
                int(args["offerId"]),
                int(args["expiresAt"]),
                int(args["treeSize"]),
            ],
        ).fetchall()
        return len(found)

    def _tokens(self) -> list[int]:
        """This publisher's asset ids, of the datasets minted so far (a token, once minted, is
        its dataset's for good: remembered; the others are asked again at each sync)."""
        for dataset_id, dataset in self.by_dataset_id.items():
            if dataset_id not in self._tokens_of:
                token = self.asset.asset_of(self.registry, dataset)
                if token is not None:
                    self._tokens_of[dataset_id] = token
        return sorted(self._tokens_of.values())

    def _dataset_of(self, asset_id: int) -> str | None:
        """The dataset of asset ``asset_id`` when it is this publisher's, else None."""
        if asset_id not in self._assets:
            info = self.asset.info(asset_id)
            ours = info.registry.lower() == self.registry
            self._assets[asset_id] = self.by_dataset_id.get(info.dataset_id) if ours else None
        return self._assets[asset_id]

    def _remember(self, con: duckdb.DuckDBPyConnection, number: int, hash_: str, at: int) -> None:
        con.execute("INSERT OR REPLACE INTO chain_blocks VALUES (?, ?)", [number, hash_])
        con.execute("DELETE FROM chain_blocks WHERE number <= ?", [number - KEPT_BLOCKS])
        con.execute(
            "INSERT OR REPLACE INTO chain_sync VALUES (?, ?, ?, ?)",
            [self.licences.address, self.w3.eth.chain_id, number, at],
        )


def licences_of(store: MarketStore, wallet: str | None = None) -> list[dict[str, Any]]:
    """Recorded licences (newest first), with whether each is valid now."""
    if not store.path.exists():
        return []
    with store._connect(read_only=True) as con:
        held, chain_time = read_chain_licences(con)
        if not held:
            return []
        where, params = ("WHERE lower(wallet) = lower(?)", [wallet]) if wallet else ("", [])
        cursor = con.execute(
            "SELECT wallet, dataset, asset_id, offer_id, expires_at, tree_size, block_number, "
            f"tx_hash FROM chain_licences {where} ORDER BY block_number DESC, log_index DESC",
            params,
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    now = max(time.time(), chain_time)
    for row in rows:
        row["valid"] = row["expires_at"] > now
    return rows


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex().removeprefix("0x")
