"""A local ``dask.distributed`` cluster of worker processes for ``--runner dask``.

Started once per process on first use, on 127.0.0.1 only and without the dashboard, and closed
at exit. Users with a real cluster pass its scheduler address instead; its workers then need
the project installed and the data directory on a shared filesystem (they write the Parquet).
"""

from __future__ import annotations

import atexit
from typing import Any

LOCAL_WORKERS = 2
_cluster: Any = None


def local_scheduler_address(workers: int = LOCAL_WORKERS) -> str:
    """The address of this process's local cluster, started on first call."""
    global _cluster
    if _cluster is None:
        from distributed import LocalCluster

        _cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False},  # no web server, not even on loopback
            silence_logs=40,  # logging.ERROR
        )
        atexit.register(close_local_cluster)
    return _cluster.scheduler_address


def close_local_cluster() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.close()
        _cluster = None
