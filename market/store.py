"""The marketplace's own DuckDB file: buyers, their API keys (hashed), entitlements, terms.

It is separate from the pipeline's catalog (``private/market.duckdb`` under the data
directory): the catalog is written by the driver, this file by the seller's ``rda market``
commands, and neither needs the other's write lock. API keys are 256-bit random tokens shown
once; only their SHA-256 is stored (a slow password hash buys nothing for keys this random).
Every statement here is parameterized.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from sinks.layout import DataLayout

KEY_PREFIX = "rdak_"
DEFAULT_LICENSE = "CC-BY-4.0"
_BUYER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_DDL = """
CREATE TABLE IF NOT EXISTS buyers (
    name VARCHAR PRIMARY KEY, key_sha256 VARCHAR UNIQUE, key_hint VARCHAR,
    created_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS entitlements (
    buyer VARCHAR, dataset VARCHAR, granted_at TIMESTAMPTZ, PRIMARY KEY (buyer, dataset));
CREATE TABLE IF NOT EXISTS terms (
    dataset VARCHAR PRIMARY KEY, license VARCHAR, price_usd DECIMAL(12, 2), title VARCHAR);
ALTER TABLE terms ADD COLUMN IF NOT EXISTS price_unit VARCHAR;
ALTER TABLE terms ADD COLUMN IF NOT EXISTS license_text VARCHAR;
CREATE SEQUENCE IF NOT EXISTS access_request_ids;
CREATE TABLE IF NOT EXISTS access_requests (
    id BIGINT PRIMARY KEY DEFAULT nextval('access_request_ids'), buyer VARCHAR, dataset VARCHAR,
    message VARCHAR, requested_at TIMESTAMPTZ, status VARCHAR, decided_at TIMESTAMPTZ);
ALTER TABLE buyers ADD COLUMN IF NOT EXISTS wallet VARCHAR;
CREATE TABLE IF NOT EXISTS siwe_nonces (
    nonce VARCHAR PRIMARY KEY, issued_at TIMESTAMPTZ, expires_at TIMESTAMPTZ, used_at TIMESTAMPTZ);
ALTER TABLE siwe_nonces ADD COLUMN IF NOT EXISTS message_sha256 VARCHAR;
CREATE TABLE IF NOT EXISTS chain_licences (
    tx_hash VARCHAR, log_index INTEGER, block_number BIGINT, block_hash VARCHAR,
    wallet VARCHAR, asset_id BIGINT, dataset VARCHAR, offer_id BIGINT, expires_at BIGINT,
    tree_size BIGINT, PRIMARY KEY (tx_hash, log_index));
CREATE TABLE IF NOT EXISTS chain_blocks (number BIGINT PRIMARY KEY, hash VARCHAR);
CREATE TABLE IF NOT EXISTS chain_sync (
    contract VARCHAR PRIMARY KEY, chain_id BIGINT, synced_block BIGINT, chain_time BIGINT);
"""
MAX_REQUEST_MESSAGE = 2000
_PROCESS_LOCK = threading.RLock()
_TERMS_COLUMNS = ("license", "price_usd", "title", "price_unit", "license_text")


class MarketError(ValueError):
    """A seller's or buyer's mistake in marketplace management (unknown buyer, bad name…)."""


def market_path(data_dir: Path) -> Path:
    return data_dir / "private" / "market.duckdb"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Buyer:
    name: str
    datasets: frozenset[str]
    wallet: str | None = None  # a buyer who signed in with a wallet (EIP-4361)


@dataclass(frozen=True)
class Terms:
    license: str = DEFAULT_LICENSE
    price_usd: float = 0.0
    title: str | None = None
    price_unit: str | None = None  # "per month", "per 1,000 rows"…; None: a one-time licence
    license_text: str | None = None  # the seller's own text, when not only an SPDX id


@dataclass
class MarketSnapshot:
    """Everything the service needs from the store, read once and swapped on change."""

    buyers_by_key_hash: dict[str, Buyer] = field(default_factory=dict)
    terms: dict[str, Terms] = field(default_factory=dict)
    requests: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # latest
    # Licences bought on chain (market/entitlements.py): wallet -> dataset -> expiry (unix s),
    # and the chain's time at the last sync; a licence counts while its expiry is ahead of
    # both the chain's time and this machine's clock.
    chain_licences: dict[str, dict[str, int]] = field(default_factory=dict)
    chain_time: int = 0

    def buyer_for_key(self, api_key: str) -> Buyer | None:
        buyer = self.buyers_by_key_hash.get(hash_key(api_key))
        if buyer is None or buyer.wallet is None:
            return buyer
        now = max(time.time(), self.chain_time)
        held = self.chain_licences.get(buyer.wallet.lower(), {})
        bought = {dataset for dataset, expiry in held.items() if expiry > now}
        return Buyer(buyer.name, buyer.datasets | bought, buyer.wallet)

    def terms_for(self, dataset: str) -> Terms:
        return self.terms.get(dataset, Terms())


class MarketStore:
    """Read and change the marketplace file; every method opens and closes its connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection at a time in this process: DuckDB refuses a read-only and a
        read-write connection to one file at once, and ``rda serve`` writes from its licence
        sync and sign-in threads while requests read."""
        with _PROCESS_LOCK:
            if read_only:
                con = duckdb.connect(str(self.path), read_only=True)
            else:
                # Buyers' names, hashed keys, wallets and messages: in a data directory
                # (``market_path``), its private folder, its owner's alone.
                folder = self.path.parent
                if folder.name == "private":
                    DataLayout(folder.parent).seal_private()
                else:
                    folder.mkdir(parents=True, exist_ok=True)
                con = duckdb.connect(str(self.path))
                con.execute(_DDL)
            try:
                yield con
            finally:
                con.close()

    def add_buyer(self, name: str) -> str:
        """Create a buyer; return the API key, which is never stored nor shown again."""
        if not _BUYER_NAME.match(name):
            raise MarketError(
                f"buyer name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._connect() as con:
            if con.execute("SELECT 1 FROM buyers WHERE name = ?", [name]).fetchone():
                raise MarketError(f"buyer {name!r} already exists")
            con.execute(
                "INSERT INTO buyers (name, key_sha256, key_hint, created_at) VALUES (?, ?, ?, ?)",
                [name, hash_key(api_key), api_key[:9] + "…", _now()],
            )
        return api_key

    def grant(self, name: str, dataset: str) -> bool:
        """Entitle ``name`` to ``dataset``; False when it already was."""
        with self._connect() as con:
            self._require_buyer(con, name)
            exists = con.execute(
                "SELECT 1 FROM entitlements WHERE buyer = ? AND dataset = ?", [name, dataset]
            ).fetchone()
            if exists:
                return False
            con.execute("INSERT INTO entitlements VALUES (?, ?, ?)", [name, dataset, _now()])
        self.decide(name, dataset, "granted")
        return True

    def revoke(self, name: str, dataset: str) -> bool:
        """Withdraw an entitlement; False when there was none."""
        with self._connect() as con:
            self._require_buyer(con, name)
            found = con.execute(
                "DELETE FROM entitlements WHERE buyer = ? AND dataset = ? RETURNING dataset",
                [name, dataset],
            ).fetchall()
            return bool(found)

    def set_terms(
        self,
        dataset: str,
        license: str | None,
        price_usd: float | None,
        title: str | None,
        price_unit: str | None = None,
        license_text: str | None = None,
    ) -> Terms:
        if price_usd is not None and price_usd < 0:
            raise MarketError("a price cannot be negative")
        with self._connect() as con:
            current = _terms(con, dataset) or Terms()
            terms = Terms(
                license or current.license,
                current.price_usd if price_usd is None else float(price_usd),
                title or current.title,
                price_unit or current.price_unit,
                license_text or current.license_text,
            )
            con.execute(
                "INSERT OR REPLACE INTO terms (dataset, license, price_usd, title, price_unit, "
                "license_text) VALUES (?, ?, ?, ?, ?, ?)",
                [dataset, *(getattr(terms, c) for c in _TERMS_COLUMNS)],
            )
        return terms

    def request_access(self, name: str, dataset: str, message: str) -> dict[str, Any]:
        """A buyer asks for a licence; the seller sees it in ``rda market requests``. A pending
        request for the same dataset is updated, not repeated."""
        message = message.strip()[:MAX_REQUEST_MESSAGE]
        with self._connect() as con:
            self._require_buyer(con, name)
            con.execute(
                "DELETE FROM access_requests "
                "WHERE buyer = ? AND dataset = ? AND status = 'pending'",
                [name, dataset],
            )
            (request_id,) = con.execute(
                "INSERT INTO access_requests (buyer, dataset, message, requested_at, status) "
                "VALUES (?, ?, ?, ?, 'pending') RETURNING id",
                [name, dataset, message, _now()],
            ).fetchone()
            return _request(con, request_id)

    def access_requests(self, status: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._connect(read_only=True) as con:
            if not _has_table(con, "access_requests"):
                return []
            where, params = ("WHERE status = ?", [status]) if status else ("", [])
            ids = con.execute(
                f"SELECT id FROM access_requests {where} ORDER BY requested_at", params
            ).fetchall()
            return [_request(con, request_id) for (request_id,) in ids]

    def decide(self, name: str, dataset: str, status: str) -> int:
        """Close ``name``'s pending requests for ``dataset`` as ``granted`` or ``declined``."""
        with self._connect() as con:
            found = con.execute(
                "UPDATE access_requests SET status = ?, decided_at = ? WHERE buyer = ? "
                "AND dataset = ? AND status = 'pending' RETURNING id",
                [status, _now(), name, dataset],
            ).fetchall()
            return len(found)

    def buyers(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._connect(read_only=True) as con:
            rows = con.execute(
                "SELECT b.name, b.key_hint, b.created_at, "
                "list(e.dataset ORDER BY e.dataset) FILTER (WHERE e.dataset IS NOT NULL) "
                "FROM buyers b LEFT JOIN entitlements e ON e.buyer = b.name "
                "GROUP BY ALL ORDER BY b.name"
            ).fetchall()
        return [
            {"name": n, "key_hint": hint, "created_at": created.isoformat(), "datasets": ds or []}
            for n, hint, created, ds in rows
        ]

    def snapshot(self) -> MarketSnapshot:
        if not self.path.exists():
            return MarketSnapshot()
        with self._connect(read_only=True) as con:
            cursor = con.execute("SELECT * FROM buyers")  # a store of any version
            names = [d[0] for d in cursor.description]
            keys = [
                (row["name"], row["key_sha256"], row.get("wallet"))
                for row in (dict(zip(names, r, strict=True)) for r in cursor.fetchall())
            ]
            grants = con.execute("SELECT buyer, dataset FROM entitlements").fetchall()
            datasets = [d for (d,) in con.execute("SELECT dataset FROM terms").fetchall()]
            terms = {d: _terms(con, d) or Terms() for d in datasets}
            requests = {}
            if _has_table(con, "access_requests"):
                latest = con.execute(
                    "SELECT id FROM access_requests QUALIFY row_number() OVER "
                    "(PARTITION BY buyer, dataset ORDER BY requested_at DESC) = 1"
                ).fetchall()
                for (request_id,) in latest:
                    request = _request(con, request_id)
                    requests[(request["buyer"], request["dataset"])] = request
            from market.entitlements import read_chain_licences

            chain_licences, chain_time = read_chain_licences(con)
        licensed: dict[str, set[str]] = {}
        for buyer, dataset in grants:
            licensed.setdefault(buyer, set()).add(dataset)
        return MarketSnapshot(
            {
                digest: Buyer(name, frozenset(licensed.get(name, ())), wallet)
                for name, digest, wallet in keys
            },
            terms,
            requests,
            chain_licences,
            chain_time,
        )

    @staticmethod
    def _require_buyer(con: duckdb.DuckDBPyConnection, name: str) -> None:
        if not con.execute("SELECT 1 FROM buyers WHERE name = ?", [name]).fetchone():
            raise MarketError(f"no buyer named {name!r}: add one with `rda market add-buyer`")


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()
    )


def _terms(con: duckdb.DuckDBPyConnection, dataset: str) -> Terms | None:
    """A dataset's terms, from a store of any version (older ones lack the newer columns)."""
    cursor = con.execute("SELECT * FROM terms WHERE dataset = ?", [dataset])
    row = cursor.fetchone()
    if row is None:
        return None
    values = dict(zip([d[0] for d in cursor.description], row, strict=True))
    price = values.get("price_usd")
    return Terms(
        values.get("license") or DEFAULT_LICENSE,
        float(price) if price is not None else 0.0,
        values.get("title"),
        values.get("price_unit"),
        values.get("license_text"),
    )


def _request(con: duckdb.DuckDBPyConnection, request_id: int) -> dict[str, Any]:
    cursor = con.execute("SELECT * FROM access_requests WHERE id = ?", [request_id])
    values = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    for key in ("requested_at", "decided_at"):
        values[key] = values[key].isoformat() if values.get(key) else None
    return values


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
