"""The worker process of ``rda serve``: runs buyer queries, one at a time, under a memory cap.

Started by ``market.pool`` (multiprocessing's forkserver, which imports this module once, so a
new worker starts in milliseconds). Before any query it caps its own data segment
(``RLIMIT_DATA``): a value that grows past the cap makes DuckDB or Python fail an allocation,
which comes back as ``out_of_memory``, never as the server's memory. Arrow uses the system
allocator here, which returns memory to the cap's accounting as soon as it is freed.
"""

from __future__ import annotations

import resource
from multiprocessing.connection import Connection
from pathlib import Path

import pyarrow as pa

from market.execution import QueryJob, execute
from market.policy import QueryRefused
from market.sandbox import Limits, Sandbox, out_of_memory_refusal


def worker_main(conn: Connection, limits: Limits, spool_dir: str, memory_bytes: int) -> None:
    """Answer jobs from ``conn`` until it closes: ("ok", QueryOutput) or ("refused", …)."""
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    pa.set_memory_pool(pa.system_memory_pool())
    sandbox = Sandbox(limits)
    spool = Path(spool_dir)
    while True:
        try:
            job: QueryJob = conn.recv()
        except (EOFError, OSError):
            break
        try:
            reply: tuple = ("ok", execute(job, sandbox, spool))
        except QueryRefused as refusal:
            reply = ("refused", refusal.code, refusal.message, refusal.status)
        except MemoryError:
            refusal = out_of_memory_refusal(limits)
            reply = ("refused", refusal.code, refusal.message, refusal.status)
        except Exception as error:  # a worker answers every job, whatever went wrong
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            reply = ("refused", "query_failed", f"{type(error).__name__}: {message}", 400)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            break
    sandbox.close()
