"""``rda serve``: the marketplace's HTTP API and web page.

Built on the standard library's ``ThreadingHTTPServer``, hardened where it is soft: a
connection cap (the connection past it gets an immediate ``503``, never a thread), a deadline
for receiving each request, headers and body together (a client that trickles bytes is cut
off: no slowloris), a byte budget for headers, a strict ``Content-Length`` parser (digits only,
one value, at most ``max_body``; chunked bodies are refused, so nothing unread is ever taken
for the next request), the API key checked before a body is read, and a JSON error with a
stable code for everything, including what the standard library would answer in HTML.
Queries run in worker processes (``market.pool``); a handler thread only waits for the
encoded result and streams it (large results with ``sendfile`` from a spool file).
Measured against uvicorn 0.54 (``docs/marketplace.md``): 100 µs per keep-alive round trip here,
158 µs there with httptools, and uvicorn has no deadline for receiving a request, the guarantee
a thread-per-connection server needs most; so no dependency is added.

Every ``/api/`` endpoint needs an API key (``Authorization: Bearer <key>``, or ``X-API-Key``).
The page and its scripts under ``/`` and ``/static/`` are public: they hold no data, and the
page asks for the key before it fetches anything.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from market.api import public_route, route
from market.deadlines import Deadlines
from market.execution import QueryOutput
from market.policy import QueryRefused
from market.service import Marketplace
from market.web_assets import static_file
from proofs.documents import depth_over

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # connect-src: the page's verifier reads anchors from the chain node the user names.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' http: https:; frame-ancestors 'none'",
}
_MAX_JSON_DEPTH = 16
_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "request_too_large",
    414: "request_too_large",
    431: "headers_too_large",
    503: "unavailable",
    505: "http_version_not_supported",
}


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 128  # open connections; the next one gets 503 at once
    receive_timeout_s: float = 15.0  # for a whole request to arrive; also the keep-alive idle time
    send_timeout_s: float = 30.0  # a reader that takes nothing for this long is dropped
    max_body: int = 256 * 1024
    max_header_bytes: int = 16 * 1024  # request line and headers together
    # Open connections from one address: one client (no key needed to connect) holding ~140
    # idle sockets, reopening those cut at the receive deadline, left a buyer 1 answer in 25.
    # Behind a reverse proxy every client has its address: set it to ``max_connections``.
    max_connections_per_client: int = 32


class _HeadersTooLarge(Exception):
    pass


class MarketServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default listen backlog (5) resets bursts of new clients

    def __init__(
        self, address: tuple[str, int], market: Marketplace, limits: ServerLimits | None = None
    ) -> None:
        super().__init__(address, MarketHandler)
        self.market = market
        self.limits = limits or ServerLimits()
        self.receiving = Deadlines(_cut_off, "rda-serve-receive")
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self._open_from: Counter[str] = Counter()  # open connections by client address
        self._open_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._open(client_address[0]):
            _refuse_connection(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._close(client_address[0])
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._close(client_address[0])

    def _open(self, client: str) -> bool:
        """Take a place for a connection from ``client``, if both its own and the server's
        caps leave one."""
        with self._open_lock:
            if self._open_from[client] >= self.limits.max_connections_per_client:
                return False
            if not self._slots.acquire(blocking=False):
                return False
            self._open_from[client] += 1
        return True

    def _close(self, client: str) -> None:
        with self._open_lock:
            self._open_from[client] -= 1
            if self._open_from[client] <= 0:
                del self._open_from[client]
            self._slots.release()


class _BudgetReader:
    """The connection's reader, with a byte budget for the request line and headers."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.budget = 0

    def readline(self, limit: int = -1) -> bytes:
        if self.budget <= 0:
            raise _HeadersTooLarge
        cap = self.budget if limit is None or limit < 0 else min(limit, self.budget)
        line = self.raw.readline(cap)
        self.budget -= len(line)
        if self.budget <= 0 and not line.endswith(b"\n"):
            raise _HeadersTooLarge
        return line

    def read(self, size: int = -1) -> bytes:
        return self.raw.read(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class MarketHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: MarketServer

    def setup(self) -> None:
        self.timeout = self.server.limits.send_timeout_s  # each socket operation
        super().setup()
        self.rfile = _BudgetReader(self.rfile)  # type: ignore[assignment]
        self._receiving: int | None = None
        self._receive_due = 0.0  # monotonic time the request must have arrived by
        self._head_only = False
        self._body_read = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the console; errors are in the responses

    def handle_one_request(self) -> None:
        limits = self.server.limits
        self.rfile.budget = limits.max_header_bytes  # type: ignore[attr-defined]
        self._head_only = False
        self._body_read = True  # until a request with a body is dispatched
        self._watch_receiving(limits.receive_timeout_s)
        try:
            super().handle_one_request()
        except _HeadersTooLarge:
            self.close_connection = True
            budget = limits.max_header_bytes
            self.send_error(431, f"request line and headers are limited to {budget} bytes")
        except OSError:
            self.close_connection = True  # the client went away, or was cut off
        finally:
            self._received()

    def _watch_receiving(self, seconds: float) -> None:
        self._receive_due = time.monotonic() + seconds
        self._receiving = self.server.receiving.watch(self.connection, seconds)

    def _received(self) -> None:
        self.server.receiving.release(self._receiving)
        self._receiving = None

    @contextlib.contextmanager
    def _server_time(self) -> Iterator[None]:
        """The server's own work between a request's head and its body (the key's check, which
        may wait while the marketplace file is read again): the receive deadline is the
        client's time, so it stops meanwhile and then goes on with the time it had left."""
        if self._receiving is None:
            yield
            return
        left = self._receive_due - time.monotonic()
        self._received()
        try:
            yield
        finally:
            self._watch_receiving(left)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (bad request line, unknown method…) as JSON."""
        if code == 501:  # an unknown method
            code, message = 405, f"{self.command} is not allowed"
        self.close_connection = True
        reason = message or HTTPStatus(code).phrase
        error = {"code": _ERROR_CODES.get(code, "bad_request"), "message": reason}
        self._send_json(code, {"error": error})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._head_only = True
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        try:
            path = _clean_path(urlsplit(self.path).path)
            if not path.startswith("/api/"):
                self._received()
                if method not in ("GET", "HEAD"):
                    raise QueryRefused("method_not_allowed", f"{method} is not allowed", 405)
                self._send(200, *static_file(path), {"Cache-Control": "no-cache"})
                return
            self._api(method, path, parse_qs(urlsplit(self.path).query))
        except QueryRefused as refusal:
            self._send_json(refusal.status, {"error": refusal.as_dict()})
        except Exception as error:  # a bug must not take the server down with it
            self.close_connection = True
            self._send_json(500, {"error": {"code": "internal", "message": type(error).__name__}})

    def _api(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        market = self.server.market
        has_body = method in ("POST", "PUT", "PATCH") or "Content-Length" in self.headers
        if path.startswith("/api/siwe/"):  # wallet sign-in: before there is a key
            body = self._read_body() if has_body else None
            self._received()
            self._send_json(*public_route(market, method, path, body))
            return
        try:
            with self._server_time():
                buyer = market.authenticate(self._api_key())
        except QueryRefused:
            if has_body:
                self.close_connection = True  # its body stays unread
            raise
        body = self._read_body() if has_body else None
        self._received()
        status, payload = route(market, buyer, method, path, query, body)
        if isinstance(payload, QueryOutput):
            try:
                headers = {
                    "RDA-Checkpoints": json.dumps(payload.checkpoints, separators=(",", ":")),
                    # W3C Server Timing: where a query's time went (queue, worker, engine)
                    "Server-Timing": ", ".join(f"{k};dur={v}" for k, v in payload.timings.items()),
                }
                self._send_output(payload, headers)
            finally:
                payload.release()
        else:
            self._send_json(status, payload)

    def _has_body(self) -> bool:
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        return "Transfer-Encoding" in headers or headers.get("Content-Length", "0").strip() != "0"

    def _api_key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("X-API-Key")

    def _read_body(self) -> dict[str, Any]:
        limits = self.server.limits
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            raise QueryRefused(
                "length_required", "send the body with a Content-Length, not chunked", 411
            )
        lengths = self.headers.get_all("Content-Length") or ["0"]
        raw = lengths[0].strip()
        if len(lengths) != 1 or not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            self.close_connection = True
            raise QueryRefused("bad_request", "Content-Length must be one non-negative integer")
        length = int(raw)
        if length > limits.max_body:
            self.close_connection = True  # the unread body would be taken for the next request
            raise QueryRefused(
                "request_too_large", f"request bodies are limited to {limits.max_body} bytes", 413
            )
        data = self.rfile.read(length) if length else b""
        self._body_read = True
        if len(data) != length:
            self.close_connection = True
            raise QueryRefused("bad_request", "the body ended before its Content-Length")
        return _parse_json_object(data)

    # -- responses ---------------------------------------------------------------------------

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, default=str).encode()
        self._send(status, body, "application/json")

    def _send_output(self, output: QueryOutput, headers: dict[str, str]) -> None:
        if output.body is not None:
            self._send(200, output.body, output.media_type, headers)
            return
        # A spool file that cannot be opened is the server's fault: _dispatch answers 500 (a
        # connection closed with no answer would leave the buyer guessing). The caller
        # releases it, sent or not.
        with Path(str(output.path)).open("rb") as handle:
            try:
                self._send_headers(200, output.media_type, output.size, headers)
                if not self._head_only:
                    self.connection.sendfile(handle)
            except OSError:
                self.close_connection = True  # the client went away

    def _send(self, status: int, body: bytes, media_type: str, headers: dict | None = None) -> None:
        try:
            self._send_headers(status, media_type, len(body), headers)
            if not self._head_only:
                self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client went away

    def _send_headers(self, status: int, media_type: str, size: int, headers: dict | None) -> None:
        if not self._body_read and self._has_body():
            self.close_connection = True  # a body left unread would be taken for a request
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(size))
        if status == 429 or status == 503:
            self.send_header("Retry-After", "1")
        if self.close_connection:
            self.send_header("Connection", "close")
        for name, value in {**_SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()


def _clean_path(path: str) -> str:
    """The request path, or a 404 for one that steps outside itself (``..``, ``.``, ``//``)."""
    parts = [unquote(p) for p in path.split("/")[1:]]
    if not path.startswith("/") or any(p in ("", ".", "..") or "/" in p for p in parts[:-1]):
        raise QueryRefused("not_found", f"no page {path[:200]}", 404)
    if parts and parts[-1] in (".", ".."):
        raise QueryRefused("not_found", f"no page {path[:200]}", 404)
    return "/" + "/".join(parts)


def _parse_json_object(data: bytes) -> dict[str, Any]:
    depth = depth_over(data, _MAX_JSON_DEPTH)
    if depth is not None:
        limit = _MAX_JSON_DEPTH
        raise QueryRefused("bad_request", f"the JSON body is nested deeper than {limit} levels")
    try:
        value = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise QueryRefused("bad_request", "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise QueryRefused("bad_request", "the request body must be a JSON object")
    try:  # JSON may escape half of a UTF-16 pair alone ("\ud800"): valid JSON, but not text
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise QueryRefused(
            "bad_request", "the request body holds a lone surrogate (\\ud800-\\udfff): not text"
        ) from None
    return value


def _cut_off(connection: socket.socket) -> None:
    connection.shutdown(socket.SHUT_RDWR)


def _refuse_connection(connection: socket.socket) -> None:
    """Answer a connection past the cap with 503 and close it, without a thread."""
    message = "the server has as many open connections as it serves: try again shortly"
    body = json.dumps({"error": {"code": "too_many_connections", "message": message}}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        connection.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            connection.recv(65536)
        connection.send(head + body)
        connection.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        connection.close()


def start_server(
    market: Marketplace,
    port: int = 0,
    host: str = "127.0.0.1",
    limits: ServerLimits | None = None,
) -> MarketServer:
    """Serve in a background thread; ``server.shutdown()`` stops it."""
    server = MarketServer((host, port), market, limits)
    threading.Thread(target=server.serve_forever, name="rda-serve", daemon=True).start()
    return server
