"""One buyer query from checked SQL to encoded bytes: the sandbox, proofs, the encoder.

The same function runs in ``rda query`` (in the buyer's own process) and in the worker
processes of ``rda serve`` (``market.pool``), so a query is bounded the same way in both: one
deadline covers the query, the proofs and the encoding; rows and encoded bytes have limits.
A ``QueryJob`` holds plain data only, so it crosses a process boundary as a pickle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from market.assets import Asset
from market.proving import prove_returned_rows
from market.results import FORMATS, ResultSink, write_result
from market.sandbox import Sandbox, timeout_refusal


@dataclass(frozen=True)
class QueryJob:
    sql: str  # already checked by ``market.policy``
    assets: tuple[Asset, ...]  # the licensed datasets the query reads
    fmt: str = "json"
    max_rows: int | None = None
    proofs: bool = False


@dataclass
class QueryOutput:
    media_type: str
    row_count: int
    size: int
    body: bytes | None  # a small result, in memory
    path: str | None  # a larger one, in a spool file the receiver streams and deletes
    checkpoints: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)  # ms: queue, run, execute
    # Called once the result is sent or dropped (``release``): a query pool counts a spooled
    # result against its buyer's running queries until then.
    on_release: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def read_body(self) -> bytes:
        """The whole result as bytes, then ``release``: the spool file is removed."""
        if self.body is not None:
            return self.body
        try:
            return Path(str(self.path)).read_bytes()
        finally:
            self.release()

    def release(self) -> None:
        """Done with the result, sent or not: its spool file removed, ``on_release`` called
        (once)."""
        if self.path is not None:
            Path(self.path).unlink(missing_ok=True)
        hook, self.on_release = self.on_release, None
        if hook is not None:
            hook()


def execute(job: QueryJob, sandbox: Sandbox, spool_dir: Path | None = None) -> QueryOutput:
    """Run ``job`` in ``sandbox`` under its limits; refusals raise ``QueryRefused``."""
    limits = sandbox.limits
    started = time.monotonic()
    deadline = started + limits.timeout_s
    assets = list(job.assets)
    envelope: dict[str, Any] = {"checkpoints": [a.checkpoint.as_dict() for a in assets]}
    sink = ResultSink(limits.max_result_bytes, spool_dir)
    try:
        if job.proofs:
            table = sandbox.run(job.sql, assets, job.max_rows, leaf_index=True)
            # each bundle proves exactly the row shown beside it, or the query is refused
            table, envelope["proofs"] = prove_returned_rows(table, assets)
            if time.monotonic() > deadline:
                raise timeout_refusal(limits)
            rows = write_result(table.schema, table.to_batches(), job.fmt, envelope, sink)
        else:
            with sandbox.stream(job.sql, assets, job.max_rows, deadline=deadline) as streamed:
                rows = write_result(*streamed, job.fmt, envelope, sink)
        body, path = sink.finish()
    except BaseException:
        sink.discard()
        raise
    elapsed = {"execute": round((time.monotonic() - started) * 1000, 3)}
    return QueryOutput(
        FORMATS[job.fmt], rows, sink.size, body, path, envelope["checkpoints"], elapsed
    )
