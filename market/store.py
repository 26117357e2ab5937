"""The marketplace's own DuckDB file: buyers, their API keys (hashed), entitlements, terms.

It is separate from the pipeline's catalog (``private/market.duckdb`` under the data
directory): the catalog is written by the driver, this file by the seller's ``rda market``
commands, and neither needs the other's write lock. API keys are 256-bit random tokens shown
once; only their SHA-256 is stored (a slow password hash buys nothing for keys this random).
Every statement here is parameterized.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

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
"""


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


@dataclass(frozen=True)
class Terms:
    license: str = DEFAULT_LICENSE
    price_usd: float = 0.0
    title: str | None = None


@dataclass
class MarketSnapshot:
    """Everything the service needs from the store, read once and swapped on change."""

    buyers_by_key_hash: dict[str, Buyer] = field(default_factory=dict)
    terms: dict[str, Terms] = field(default_factory=dict)

    def buyer_for_key(self, api_key: str) -> Buyer | None:
        return self.buyers_by_key_hash.get(hash_key(api_key))

    def terms_for(self, dataset: str) -> Terms:
        return self.terms.get(dataset, Terms())


class MarketStore:
    """Read and change the marketplace file; every method opens and closes its connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if read_only:
            return duckdb.connect(str(self.path), read_only=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path))
        con.execute(_DDL)
        return con

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
                "INSERT INTO buyers VALUES (?, ?, ?, ?)",
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
        self, dataset: str, license: str | None, price_usd: float | None, title: str | None
    ) -> Terms:
        if price_usd is not None and price_usd < 0:
            raise MarketError("a price cannot be negative")
        with self._connect() as con:
            row = con.execute(
                "SELECT license, price_usd, title FROM terms WHERE dataset = ?", [dataset]
            ).fetchone()
            current = Terms(row[0], float(row[1]), row[2]) if row else Terms()
            terms = Terms(
                license or current.license,
                current.price_usd if price_usd is None else float(price_usd),
                title or current.title,
            )
            con.execute(
                "INSERT OR REPLACE INTO terms VALUES (?, ?, ?, ?)",
                [dataset, terms.license, terms.price_usd, terms.title],
            )
        return terms

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
            keys = con.execute("SELECT name, key_sha256 FROM buyers").fetchall()
            grants = con.execute("SELECT buyer, dataset FROM entitlements").fetchall()
            terms = con.execute("SELECT dataset, license, price_usd, title FROM terms").fetchall()
        licensed: dict[str, set[str]] = {}
        for buyer, dataset in grants:
            licensed.setdefault(buyer, set()).add(dataset)
        return MarketSnapshot(
            {digest: Buyer(name, frozenset(licensed.get(name, ()))) for name, digest in keys},
            {d: Terms(lic, float(price), title) for d, lic, price, title in terms},
        )

    @staticmethod
    def _require_buyer(con: duckdb.DuckDBPyConnection, name: str) -> None:
        if not con.execute("SELECT 1 FROM buyers WHERE name = ?", [name]).fetchone():
            raise MarketError(f"no buyer named {name!r}: add one with `rda market add-buyer`")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
