"""A local ``dask.distributed`` cluster of worker processes for ``--runner dask``.

Started once per process on first use, on 127.0.0.1 only, and closed at exit. Its scheduler
runs the code any client sends it, and every local user can reach a loopback port: so its
connections are TLS with a certificate made for this process alone (``Security.temporary``:
in memory, never written), required of every client and worker, and the web servers a
scheduler and its workers always start serve nothing, on a port of their own choosing (the
scheduler's default, 8787, is ``rda serve``'s too). Clients of this process (Beam's Dask runner
makes its own) find the certificate in dask's configuration, set while the cluster lives.

Users with a real cluster pass its scheduler address instead, secured as they run it; its
workers then need the project installed and the data directory on a shared filesystem (they
write the Parquet).
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
        import dask
        from distributed import LocalCluster

        security = _private_security()
        _cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            protocol="tls://",
            security=security,
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            worker_dashboard_address="127.0.0.1:0",
            silence_logs=40,  # logging.ERROR
        )
        # Kept for the cluster's life: Beam's runner connects with a client of its own making.
        dask.config.set(_client_config(security))
        atexit.register(close_local_cluster)
    return _cluster.scheduler_address


def _private_security() -> Any:
    """A certificate for this cluster alone; its web servers with no page to serve."""
    import dask
    from distributed.security import Security

    dask.config.set({"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []})
    return Security.temporary()


def _client_config(security: Any) -> dict[str, Any]:
    return {
        "distributed.comm.require-encryption": True,
        "distributed.comm.tls.ca-file": security.tls_ca_file,
        "distributed.comm.tls.client.cert": security.tls_client_cert,
        "distributed.comm.tls.client.key": security.tls_client_key,
    }


def close_local_cluster() -> None:
    global _cluster
    if _cluster is not None:
        import dask

        _cluster.close()
        _cluster = None
        dask.config.set({"distributed.comm.require-encryption": False})  # its clients are gone
