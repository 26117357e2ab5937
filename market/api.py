"""The API's routes: which endpoint a method and path name, and what its request may hold.

Transport (connections, bodies, errors as JSON) is ``market.http``; this module maps a
request that arrived whole, from an authenticated buyer, to the marketplace service.
"""

from __future__ import annotations

from typing import Any

from market.execution import QueryOutput
from market.policy import QueryRefused
from market.service import Marketplace
from market.store import Buyer

_EXPORTS = {"datapackage.json": "datapackage", "croissant.json": "croissant"}
# Field of a query request -> its type and how the buyer should read it.
_QUERY_FIELDS: dict[str, tuple[type, str]] = {
    "sql": (str, "a string"),
    "format": (str, "one of json, csv, arrow, parquet"),
    "proofs": (bool, "true or false"),
    "max_rows": (int, "a positive integer"),
}
_RESOURCES = {"me", "listings", "query", "access-requests", "publisher", "licences"}

Response = tuple[int, "dict[str, Any] | QueryOutput"]


def route(
    market: Marketplace,
    buyer: Buyer,
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: dict[str, Any] | None,
) -> Response:
    parts = path.strip("/").split("/")[1:]
    name = parts[0] if parts else ""
    get = method in ("GET", "HEAD")
    if get and parts == ["me"]:
        me = {"buyer": buyer.name, "datasets": sorted(buyer.datasets)}
        return 200, {**me, "wallet": buyer.wallet} if buyer.wallet else me
    if get and parts == ["listings"]:
        return 200, {"listings": market.listings(buyer)}
    if get and len(parts) == 2 and name == "listings":
        return 200, market.listing(buyer, parts[1], with_report=True)
    if get and len(parts) == 3 and name == "listings" and parts[2] in _EXPORTS:
        return 200, market.export(parts[1], _EXPORTS[parts[2]])
    if get and parts == ["publisher"]:
        return 200, market.publisher_identity()
    if method == "POST" and len(parts) == 3 and name == "listings" and parts[2] == "buy":
        market.listing(buyer, parts[1])  # 404 for a dataset not on sale
        return 200, _chain(market).buy(parts[1], buyer, (body or {}).get("offer_id"))
    if get and parts == ["licences"]:
        return 200, {"wallet": buyer.wallet, "licences": _chain(market).licences_of(buyer)}
    if method == "POST" and parts == ["query"]:
        return 200, run_query(market, buyer, body or {})
    if method == "POST" and parts == ["access-requests"]:
        return 201, request_access(market, buyer, body or {})
    if get and parts == ["access-requests"]:
        mine = [r for r in market.store.access_requests() if r["buyer"] == buyer.name]
        return 200, {"requests": mine}
    if name in _RESOURCES and len(parts) <= 3 and _known_shape(parts):
        allowed = {"query": "POST", "access-requests": "GET or POST"}.get(name, "GET")
        raise QueryRefused(
            "method_not_allowed", f"{method} is not allowed on {path}: use {allowed}", 405
        )
    raise QueryRefused("not_found", f"no endpoint {path}", 404)


def public_route(market: Marketplace, method: str, path: str, body: dict | None) -> Response:
    """Wallet sign-in (EIP-4361), the only endpoints without an API key: a nonce and the
    message to sign for an address, then the signed message for an API key."""
    request = body or {}
    if method == "POST" and path == "/api/siwe/nonce":
        return 200, _chain(market).sign_in_nonce(request.get("address"))
    if method == "POST" and path == "/api/siwe/verify":
        return 200, _chain(market).sign_in(request.get("message"), request.get("signature"))
    if path in ("/api/siwe/nonce", "/api/siwe/verify"):
        raise QueryRefused(
            "method_not_allowed", f"{method} is not allowed on {path}: use POST", 405
        )
    raise QueryRefused("not_found", f"no endpoint {path}", 404)


def _chain(market: Marketplace) -> Any:
    if market.chain is None:
        raise QueryRefused(
            "not_found", "this marketplace sells no licences on chain (rda serve --rpc-url)", 404
        )
    return market.chain


def _known_shape(parts: list[str]) -> bool:
    if parts[0] == "listings":
        return len(parts) <= 2 or parts[2] in _EXPORTS
    return len(parts) == 1


def request_access(market: Marketplace, buyer: Buyer, request: dict[str, Any]) -> dict:
    dataset, message = request.get("dataset"), request.get("message", "")
    if (
        not isinstance(dataset, str)
        or not isinstance(message, str)
        or set(request)
        - {
            "dataset",
            "message",
        }
    ):
        raise QueryRefused(
            "bad_request", 'send {"dataset": "radio_kpi.v1", "message": "what you need it for"}'
        )
    return {"request": market.request_access(buyer, dataset, message)}


def run_query(market: Marketplace, buyer: Buyer, request: dict[str, Any]) -> QueryOutput:
    unknown = sorted(set(request) - set(_QUERY_FIELDS))
    if unknown:
        raise QueryRefused(
            "bad_request",
            f"unknown field {', '.join(unknown)}: a query request has {', '.join(_QUERY_FIELDS)}",
        )
    if not isinstance(request.get("sql"), str):
        raise QueryRefused("bad_request", 'send {"sql": "SELECT …"} as JSON')
    for field, (kind, words) in _QUERY_FIELDS.items():
        value = request.get(field)
        wrong_bool = kind is int and isinstance(value, bool)
        if value is not None and (not isinstance(value, kind) or wrong_bool):
            raise QueryRefused("bad_request", f"{field} must be {words}")
    return market.query(
        buyer,
        request["sql"],
        fmt=request.get("format") or "json",
        proofs=bool(request.get("proofs")),
        max_rows=request.get("max_rows"),
    )
