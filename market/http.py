"""``rda serve``: the marketplace's HTTP API and web page.

Built on the standard library's ``ThreadingHTTPServer``: the API is a handful of JSON
endpoints, a thread per connection serves the 16 concurrent clients of the benchmark without
errors (DuckDB releases the GIL while it scans), and it adds no dependency to audit. HTTP/1.1
keep-alive is on, so a client's requests reuse one connection.

Every ``/api/`` endpoint needs an API key (``Authorization: Bearer <key>``, or ``X-API-Key``).
The page and its scripts under ``/`` and ``/static/`` are public: they hold no data, and the
page asks for the key before it fetches anything.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from market.policy import QueryRefused
from market.service import Marketplace

MAX_BODY = 256 * 1024
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/verify.js": ("verify.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # connect-src: the page's verifier reads anchors from the chain node the user names.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "connect-src 'self' http: https:; frame-ancestors 'none'",
}


class MarketServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default listen backlog (5) resets bursts of new clients

    def __init__(self, address: tuple[str, int], market: Marketplace) -> None:
        super().__init__(address, MarketHandler)
        self.market = market

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class MarketHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: MarketServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the console; errors are in the responses

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            if method == "GET" and url.path in _STATIC:
                self._static(*_STATIC[url.path])
                return
            if not url.path.startswith("/api/"):
                raise QueryRefused("not_found", f"no page {url.path}", 404)
            self._api(method, url.path, parse_qs(url.query))
        except QueryRefused as refusal:
            self._send_json(refusal.status, {"error": refusal.as_dict()})
        except Exception as error:  # a bug must not take the server down with it
            self._send_json(500, {"error": {"code": "internal", "message": type(error).__name__}})

    def _api(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        market = self.server.market
        body = self._read_body() if method == "POST" else None
        buyer = market.authenticate(self._api_key())
        parts = path.strip("/").split("/")[1:]
        if method == "GET" and parts == ["me"]:
            self._send_json(200, {"buyer": buyer.name, "datasets": sorted(buyer.datasets)})
        elif method == "GET" and parts == ["listings"]:
            self._send_json(200, {"listings": market.listings(buyer)})
        elif method == "GET" and len(parts) == 2 and parts[0] == "listings":
            self._send_json(200, market.listing(buyer, parts[1], with_report=True))
        elif method == "GET" and len(parts) == 3 and parts[0] == "listings":
            fmt = {"datapackage.json": "datapackage", "croissant.json": "croissant"}.get(parts[2])
            if fmt is None:
                raise QueryRefused("not_found", f"no export {parts[2]}", 404)
            self._send_json(200, market.export(parts[1], fmt))
        elif method == "POST" and parts == ["query"]:
            self._query(buyer, body or {})
        elif method == "GET" and parts == ["publisher"]:
            self._send_json(200, market.publisher_identity())
        elif parts and parts[0] in {"me", "listings", "query", "publisher"}:
            raise QueryRefused("method_not_allowed", f"{method} is not allowed on {path}", 405)
        else:
            raise QueryRefused("not_found", f"no endpoint {path}", 404)

    def _query(self, buyer: Any, request: dict[str, Any]) -> None:
        sql = request.get("sql")
        if not isinstance(sql, str):
            raise QueryRefused("bad_request", 'send {"sql": "SELECT …"} as JSON')
        max_rows = request.get("max_rows")
        if max_rows is not None and (not isinstance(max_rows, int) or isinstance(max_rows, bool)):
            raise QueryRefused("bad_request", "max_rows must be an integer")
        result = self.server.market.query(
            buyer,
            sql,
            fmt=str(request.get("format", "json")),
            proofs=request.get("proofs") is True,
            max_rows=max_rows,
        )
        headers = {"RDA-Checkpoints": json.dumps(result.checkpoints, separators=(",", ":"))}
        self._send(200, result.body, result.media_type, headers)

    def _api_key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("X-API-Key")

    def _read_body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise QueryRefused("bad_request", "invalid Content-Length") from None
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            raise QueryRefused(
                "request_too_large", f"request bodies are limited to {MAX_BODY} bytes", 413
            )
        raw = self.rfile.read(length) if length else b""
        try:
            value = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise QueryRefused("bad_request", "the request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise QueryRefused("bad_request", "the request body must be a JSON object")
        return value

    def _static(self, name: str, media_type: str) -> None:
        data = resources.files("market").joinpath("web", name).read_bytes()
        self._send(200, data, media_type, {"Cache-Control": "no-cache"})

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, default=str).encode()
        self._send(status, body, "application/json")

    def _send(self, status: int, body: bytes, media_type: str, headers: dict | None = None) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**_SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def start_server(market: Marketplace, port: int = 0, host: str = "127.0.0.1") -> MarketServer:
    """Serve in a background thread; ``server.shutdown()`` stops it."""
    server = MarketServer((host, port), market)
    threading.Thread(target=server.serve_forever, name="rda-serve", daemon=True).start()
    return server
