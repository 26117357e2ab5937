"""The same batch on Beam's Dask runner (a local cluster of worker processes) and on FnApiRunner:
byte-identical Parquet files, identical quarantine, identical Merkle roots."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.kafka_source import open_source
from sinks.layout import DataLayout
from streaming.chain import open_chain
from streaming.driver import RunConfig, run_batch

pytestmark = pytest.mark.slow


def landed(data_dir) -> tuple[list, list, list]:
    db = duckdb.connect(str(DataLayout(data_dir).catalog), read_only=True)
    try:
        return (
            db.execute("SELECT path, sha256, rows, leaf_start FROM files ORDER BY path").fetchall(),
            db.execute("SELECT path, rows, reasons FROM quarantine_files ORDER BY path").fetchall(),
            db.execute("SELECT dataset, tree_size, root FROM checkpoints ORDER BY 1").fetchall(),
        )
    finally:
        db.close()


def test_dask_and_fnapi_runners_land_identical_bytes_and_roots(broker, topic, tmp_path, publish):
    publish(broker, topic, nodes=6, duration_s=15, bad_fraction=0.1)
    source = open_source(broker.bootstrap)
    summaries = {}
    for runner in ("fnapi", "dask"):
        config = RunConfig(
            broker.bootstrap, topic, f"{runner}-{topic}", tmp_path / runner,
            max_chunk_records=25, runner=runner,
        )  # fmt: skip
        summaries[runner] = run_batch(config, source, open_chain("embedded", None, None).anchor)
    fnapi, dask = landed(tmp_path / "fnapi"), landed(tmp_path / "dask")
    assert fnapi == dask
    assert len(fnapi[0]) > 3 and fnapi[1] and fnapi[2]  # several files, a quarantine, roots
    for name in ("read", "published", "quarantined", "reasons"):
        assert getattr(summaries["fnapi"], name) == getattr(summaries["dask"], name)
    for path, *_ in fnapi[0]:
        assert (tmp_path / "fnapi" / path).read_bytes() == (tmp_path / "dask" / path).read_bytes()


def test_the_local_cluster_takes_no_client_without_its_certificate_and_serves_no_page():
    import urllib.error
    import urllib.request

    from distributed import Client
    from distributed.security import Security

    from pipelines import dask_cluster

    address = dask_cluster.local_scheduler_address()
    assert address.startswith("tls://127.0.0.1:")
    with Client(address, timeout=10) as own:  # this process's: the certificate from its config
        assert own.submit(sum, [1, 2]).result(timeout=10) == 3
    for stranger in (Security.temporary(), Security(require_encryption=False)):
        plain = stranger.require_encryption is False
        with pytest.raises(OSError):
            Client(address.replace("tls://", "tcp://") if plain else address, security=stranger,
                   timeout=3)  # fmt: skip
    (host, port), *_ = [s.getsockname() for s in _http_sockets(dask_cluster)]
    assert port != 8787  # `rda serve`'s
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(f"http://{host}:{port}/info/main/workers.html", timeout=5)
    assert page.value.code == 404


def _http_sockets(dask_cluster) -> list:
    return list(dask_cluster._cluster.scheduler.http_server._sockets.values())
