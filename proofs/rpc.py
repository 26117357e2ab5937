"""A JSON-RPC connection to a chain node that is not trusted to behave: each answer bounded.

web3's ``HTTPProvider`` hands ``requests`` a timeout that applies to each socket read, not to the
answer: a node sending one byte every few seconds keeps a read going for hours. Nor does it
bound an answer's size, and a node answering ``eth_getCode`` with 256 MB took a verifier to a
gigabyte. ``BoundedHTTPProvider`` reads each answer as it arrives and gives up once it passes
``total_s`` seconds or ``max_bytes`` bytes, and from then on asks that node nothing more (a
verifier makes dozens of reads, and each would wait as long). What a verifier reads is small: a
contract's code is at most 24 KiB (EIP-170), an identity document at most 64 KiB, a receipt or a
block header a few KiB.

The pipeline reads its own node through it too (``streaming/chain.py``), with ``sticky=False``:
a refused answer is an outage like any other, retried, and the node is asked again on a
connection of its own (the thread stuck in the refused answer is left behind).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from web3 import HTTPProvider

ANSWER_TIMEOUT_S = 20.0  # the whole answer, from sending the request to its last byte
READ_TIMEOUT_S = 10.0  # connecting, and each wait for more of the answer
MAX_ANSWER_BYTES = 8 << 20
MAX_STUCK_THREADS = 4  # (not sticky) answers given up on and still arriving, at most
_READ_SIZE = 64 << 10


class AnswerRefused(OSError):
    """A node's answer took too long or was too large: the node did not answer usefully.
    An ``OSError``, as a node that does not answer at all raises."""


def node_name(url: str) -> str:
    """How a message names a node: the scheme, host and port of its URL, never its user,
    password, path or query (a hosted node takes its API key in the path). Written here, not
    taken from ``infra``: the auditor's side imports no other room of the project."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<a malformed URL>"
    host = parts.hostname or "?"
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}{port}"


class BoundedHTTPProvider(HTTPProvider):
    """``HTTPProvider`` whose every answer must arrive within ``total_s`` and ``max_bytes``."""

    def __init__(
        self,
        endpoint_uri: str,
        total_s: float = ANSWER_TIMEOUT_S,
        max_bytes: int = MAX_ANSWER_BYTES,
        read_timeout_s: float = READ_TIMEOUT_S,
        sticky: bool = True,
    ) -> None:
        """``sticky``: after a refused answer, the node is not asked again (a verifier's
        verdict is then INCOMPLETE at once); else the next request asks it afresh."""
        # Uncompressed answers only: a compressed one is a few bytes on the wire that decode
        # into as many as the node likes.
        headers = {**self.get_request_headers(), "Accept-Encoding": "identity"}
        super().__init__(
            endpoint_uri, request_kwargs={"timeout": read_timeout_s, "headers": headers}
        )
        self.name = node_name(endpoint_uri)  # for messages: ``endpoint_uri`` may hold a key
        self.total_s = total_s
        self.max_bytes = max_bytes
        self.sticky = sticky
        self.refused: AnswerRefused | None = None  # the answer after which the node is not asked
        self._requests: queue.Queue | None = None
        self._thread: threading.Thread | None = None  # the one asking now
        self._stuck: list[threading.Thread] = []  # threads left in answers given up on

    def _make_request(self, method: Any, request_data: bytes) -> bytes:
        if self.refused is not None:
            raise AnswerRefused(f"not asked for {method}: {self.refused}")
        # Asked on the provider's own thread, waited for ``total_s`` at most: the status line
        # and headers can drip as slowly as the body, and ``requests`` reads those with no
        # overall clock. One thread, so its connection to the node is kept between requests.
        outcome: list[Any] = []
        done = threading.Event()
        self._asking().put((method, request_data, outcome, done))
        if not done.wait(self.total_s + 1.0):
            # The thread is left to its socket's read timeout, and this request to no one: a
            # request still queued behind it is not sent once its caller has given up.
            done.set()
            if self._thread is not None:
                self._stuck.append(self._thread)
            self._requests = None  # the next request, if any, on a thread of its own
            refused = AnswerRefused(
                f"{self.name} did not answer {method} within {self.total_s:g} s"
            )
            self.refused = refused if self.sticky else None
            raise refused
        if isinstance(outcome[0], AnswerRefused) and self.sticky:
            self.refused = outcome[0]
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _asking(self) -> queue.Queue:
        """The requests' queue, its thread started on first use."""
        if self._requests is None:
            self._stuck = [t for t in self._stuck if t.is_alive()]
            if len(self._stuck) >= MAX_STUCK_THREADS:  # each holds a thread and a connection
                raise AnswerRefused(
                    f"{self.name} is still sending {len(self._stuck)} answers given up "
                    "on: not asked again until one ends"
                )
            self._requests = queue.Queue()
            self._thread = threading.Thread(
                target=self._ask_each, args=(self._requests,), daemon=True, name="rda-rpc"
            )
            self._thread.start()
        return self._requests

    def _ask_each(self, requests: queue.Queue) -> None:
        """Ask the node each request of ``requests`` (this thread's own queue, even once
        another thread has replaced it), in turn."""
        while True:
            method, request_data, outcome, done = requests.get()
            if done.is_set():
                continue  # its caller gave up while this thread was stuck in an earlier one
            try:
                outcome.append(self._ask(method, request_data))
            except BaseException as error:  # raised in the caller's thread
                outcome.append(error)
            done.set()

    def _ask(self, method: Any, request_data: bytes) -> bytes:
        started = time.monotonic()
        kwargs = {**dict(self.get_request_kwargs()), "stream": True}
        with self._request_session_manager.get_response_from_post_request(
            self.endpoint_uri, data=request_data, **kwargs
        ) as response:
            response.raise_for_status()
            return self._answer(response.raw, method, started)

    def _answer(self, raw: Any, method: Any, started: float) -> bytes:
        """The body, read as it arrives (``read1``: what one socket read brings, so the clock
        is looked at between reads, however slowly the bytes come)."""
        body = bytearray()
        while chunk := raw.read1(_READ_SIZE, decode_content=False):
            body += chunk
            if len(body) > self.max_bytes:
                raise AnswerRefused(
                    f"{self.name} answered {method} with more than {self.max_bytes:,} bytes"
                )
            if time.monotonic() - started > self.total_s:
                raise AnswerRefused(
                    f"{self.name} did not finish answering {method} within {self.total_s:g} s"
                )
        return bytes(body)
