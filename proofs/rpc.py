"""A JSON-RPC connection to a chain node that is not trusted to behave: each answer bounded.

web3's ``HTTPProvider`` hands ``requests`` a timeout that applies to each socket read, not to the
answer: a node sending one byte every few seconds keeps a read going for hours. Nor does it
bound an answer's size, and a node answering ``eth_getCode`` with 256 MB took a verifier to a
gigabyte. ``BoundedHTTPProvider`` reads each answer as it arrives and gives up once it passes
``total_s`` seconds or ``max_bytes`` bytes, and from then on asks that node nothing more (a
verifier makes dozens of reads, and each would wait as long). What a verifier reads is small: a
contract's code is at most 24 KiB (EIP-170), an identity document at most 64 KiB, a receipt or a
block header a few KiB.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from web3 import HTTPProvider

ANSWER_TIMEOUT_S = 20.0  # the whole answer, from sending the request to its last byte
READ_TIMEOUT_S = 10.0  # connecting, and each wait for more of the answer
MAX_ANSWER_BYTES = 8 << 20
_READ_SIZE = 64 << 10


class AnswerRefused(OSError):
    """A node's answer took too long or was too large: the node did not answer usefully.
    An ``OSError``, as a node that does not answer at all raises."""


class BoundedHTTPProvider(HTTPProvider):
    """``HTTPProvider`` whose every answer must arrive within ``total_s`` and ``max_bytes``."""

    def __init__(
        self,
        endpoint_uri: str,
        total_s: float = ANSWER_TIMEOUT_S,
        max_bytes: int = MAX_ANSWER_BYTES,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        # Uncompressed answers only: a compressed one is a few bytes on the wire that decode
        # into as many as the node likes.
        headers = {**self.get_request_headers(), "Accept-Encoding": "identity"}
        super().__init__(
            endpoint_uri, request_kwargs={"timeout": read_timeout_s, "headers": headers}
        )
        self.total_s = total_s
        self.max_bytes = max_bytes
        self.refused: AnswerRefused | None = None  # the answer after which the node is not asked
        self._requests: queue.Queue | None = None

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
            # The thread is left to its socket's read timeout: the node is not asked again.
            self.refused = AnswerRefused(
                f"{self.endpoint_uri} did not answer {method} within {self.total_s:g} s"
            )
            raise self.refused
        if isinstance(outcome[0], AnswerRefused):
            self.refused = outcome[0]
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _asking(self) -> queue.Queue:
        """The requests' queue, its thread started on first use."""
        if self._requests is None:
            self._requests = queue.Queue()
            threading.Thread(target=self._ask_each, daemon=True, name="rda-rpc").start()
        return self._requests

    def _ask_each(self) -> None:
        while True:
            method, request_data, outcome, done = self._requests.get()
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
                    f"{self.endpoint_uri} answered {method} with more than {self.max_bytes:,} bytes"
                )
            if time.monotonic() - started > self.total_s:
                raise AnswerRefused(
                    f"{self.endpoint_uri} did not finish answering {method} within "
                    f"{self.total_s:g} s"
                )
        return bytes(body)
