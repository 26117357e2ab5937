"""A JSON-RPC node that misbehaves, on loopback: it forwards each request to a real node (anvil)
and lets a test rewrite the answer, or answers itself (slowly, hugely, with an error)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# hook(request, upstream) -> None (forward the node's answer), a dict (the answer to send
# instead), bytes (the raw body to send), or a function that writes the answer itself on the
# handler (``send_body``, ``wfile``). ``upstream()`` asks the real node.
Answer = dict | bytes | Callable[["_Handler"], None] | None
Hook = Callable[[dict, Callable[[], dict]], Answer]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:
        """Quiet: a test reads what the proxy was asked from ``requests``."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = json.loads(body)
        self.server.requests.append(request.get("method"))
        answer = self.server.hook(request, lambda: self._upstream(body))
        if callable(answer):
            answer(self)
            return
        if answer is None:
            answer = self._upstream(body)
        self.send_body(answer if isinstance(answer, bytes) else json.dumps(answer).encode())

    def _upstream(self, body: bytes) -> dict:
        headers = {"Content-Type": "application/json"}
        asked = urllib.request.Request(self.server.upstream, data=body, headers=headers)
        with urllib.request.urlopen(asked, timeout=30) as answer:
            return json.loads(answer.read())

    def send_body(self, data: bytes, length: int | None = None) -> None:
        """An answer of ``length`` bytes (default: ``data``'s) that starts with ``data``."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass  # the client gave up: what this proxy is for


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, hook: Hook) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.hook = upstream, hook
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@contextmanager
def rpc_proxy(upstream: str, hook: Hook) -> Iterator[_Server]:
    """A proxy in front of ``upstream`` for the length of the block (``.url``, ``.requests``)."""
    server = _Server(upstream, hook)
    thread = threading.Thread(target=server.serve_forever, name="rpc-proxy", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def is_call_of(request: dict, selector: str) -> bool:
    """Whether ``request`` is an ``eth_call`` of the function with ``selector`` (0x + 8 hex)."""
    if request.get("method") != "eth_call":
        return False
    call = request["params"][0]
    return str(call.get("data", call.get("input", ""))).startswith(selector)
