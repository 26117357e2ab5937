"""Helpers for tests that start real ``rda run`` processes and check what they left behind."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from child_processes import spawn

from pipelines.aggregate import DATASET as DP_COUNTS
from pipelines.anonymize import KEY_ENV, PseudonymKey, concealed_offsets
from pipelines.kafka_source import open_source
from pipelines.staged import is_windowed
from proofs.anchor import AnchorRegistry
from proofs.shard_chain import shard_files
from sinks.storage import Store


def start_run(
    *args: str, state: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``rda run ARGS`` as a separate process, stderr to ``log`` (read while it runs); ended
    with the test that started it (``child_processes.spawn``)."""
    with log.open("ab") as sink:
        return spawn(
            [sys.executable, "-m", "cli.main", "run", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=sink,
            env={**os.environ, "RDA_STATE_DIR": str(state), **(env or {})},
        )


def run_args(bootstrap: str, topic: str, data: Path, chain_url: str, registry: str) -> list[str]:
    """Small batches on anvil. GE's jobs are left queued (``--quality queue``): these runs are
    about the data and its anchors, and GE's warm-up and jobs were half the CPU of each
    (a later ``--quality worker`` flag wins)."""
    return [
        "--bootstrap", bootstrap, "--topic", topic, "--group", f"group-{topic}",
        "--data-dir", str(data), "--chain", "rpc", "--rpc-url", chain_url,
        "--registry", registry, "--max-batch-records", "40", "--max-chunk-records", "20",
        "--interval", "0.2", "--quality", "queue",
    ]  # fmt: skip


def checkpoint_keys(paths: Iterable[Path]) -> set[tuple[str, int]]:
    """(dataset, tree size) of files named ``published/DATASET/FOLDER/SIZE.KIND.json``: the
    checkpoints' manifests, their GE attestations."""
    return {(path.parent.parent.name, int(path.name.split(".")[0])) for path in paths}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Reconciliation:
    produced: int
    published: int
    quarantined: int  # and suppressed
    lost: list[tuple[int, int]]
    duplicated: list[tuple[int, int]]
    per_node_differences: dict[str, int]
    checkpoints: int
    anchors_on_chain: int
    anchors_matching: int


def assert_exactly_once(
    bootstrap: str, topic: str, data: Path | str, registry: AnchorRegistry, produced: int
) -> None:
    """Every produced record published or quarantined once, and one anchor per checkpoint."""
    result = reconcile(bootstrap, topic, data, registry)
    assert result.produced == produced
    assert (result.lost, result.duplicated, result.per_node_differences) == ([], [], {})
    assert result.published + result.quarantined == produced
    assert result.anchors_on_chain == result.checkpoints == result.anchors_matching > 0


def reconcile(
    bootstrap: str, topic: str, data: Path | str, registry: AnchorRegistry
) -> Reconciliation:
    """Every produced (partition, offset) against every row the data directory's store holds:
    the rows of each dataset's newest checkpoint (its shards' files) and the private quarantine
    and suppressed files; and the store's anchored checkpoints against the chain."""
    produced_keys = _produced(bootstrap, topic)
    store = Store.open(data)
    seen: Counter[tuple[int, int]] = Counter()
    published = quarantined = 0
    checkpoints = []
    for path in store.list("published", ".manifest.json"):
        parts = path.split("/")
        if len(parts) == 4 and parts[2] == "checkpoints":  # published/<dataset>/checkpoints/…
            manifest = json.loads(store.read_bytes(path))
            checkpoints.append((manifest["dataset"], manifest["checkpoint"]))
    newest = {}
    for dataset, checkpoint in checkpoints:
        if checkpoint["tree_size"] > newest.get(dataset, (0, None))[0]:
            newest[dataset] = (checkpoint["tree_size"], dataset)
    for dataset in newest:
        if dataset == DP_COUNTS:  # derived: it holds rows, not records
            continue
        concealed = is_windowed(dataset)  # its offsets are published as keyed pseudonyms
        columns = ["source_partition", "source_offset"] + (["pseudonym_epoch"] * concealed)
        for file in _files_of(store, dataset, newest[dataset][0]):
            table = _table(store, f"published/{dataset}/{file}", columns)
            records = zip(*(table.column(c).to_pylist() for c in columns[:2]), strict=True)
            if concealed:
                records = _revealed(table, produced_keys, _pseudonym_key(store))
            seen.update(records)
            published += table.num_rows
    private = [p for p in store.list(f"private/quarantine/{topic}", ".parquet")]
    private += store.list(f"private/suppressed/{topic}", ".parquet")  # k-anonymity: private
    for path in private:
        table = _table(store, path, ["partition", "offset"])
        seen.update(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
        quarantined += table.num_rows
    produced_nodes = Counter(produced_keys.values())
    landed_nodes = Counter(produced_keys[po] for po in seen.elements() if po in produced_keys)
    events = registry.contract.events.Anchored().get_logs(from_block=0)
    matching = sum(
        1
        for dataset, checkpoint in checkpoints
        if (anchor := registry.get(dataset, checkpoint["tree_size"])) is not None
        and anchor.root.hex() == checkpoint["root"]
    )
    return Reconciliation(
        produced=len(produced_keys),
        published=published,
        quarantined=quarantined,
        lost=sorted(set(produced_keys) - set(seen)),
        duplicated=sorted(po for po, n in seen.items() if n > 1),
        per_node_differences={
            node: landed_nodes[node] - n
            for node, n in produced_nodes.items()
            if landed_nodes[node] != n
        },
        checkpoints=len(checkpoints),
        anchors_on_chain=len(events),
        anchors_matching=matching,
    )


def _pseudonym_key(store: Store) -> PseudonymKey:
    """The data directory's pseudonym key, as its workers take it (``streaming/keys.py``)."""
    text = os.environ.get(KEY_ENV) or store.read_bytes("private/keys/pseudonym.key").decode()
    return PseudonymKey(bytes.fromhex(text.strip()))


def _revealed(
    table: pa.Table, produced: dict[tuple[int, int], str], key: PseudonymKey
) -> list[tuple[int, int]]:
    """The (partition, offset) of each released row whose offset is a keyed pseudonym: the
    publisher, who holds the key, finds its record among the produced ones; a pseudonym of no
    produced record stays as it is (and is reported lost or unknown)."""
    rows = list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
    found: dict[tuple[int, int], dict[int, int]] = {}
    for partition, epoch in sorted({(p, e) for p, _, e in rows}):
        offsets = sorted(o for p, o in produced if p == partition)
        pseudonyms = concealed_offsets(
            pa.array([partition] * len(offsets), pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array([epoch] * len(offsets), pa.int64()),
            key,
        ).to_pylist()
        found[(partition, epoch)] = dict(zip(pseudonyms, offsets, strict=True))
    return [(p, found[(p, e)].get(o, o)) for p, o, e in rows]


def _files_of(store: Store, dataset: str, size: int) -> list[str]:
    """The files (paths in the dataset folder) of a dataset checkpoint, every shard's."""
    manifest = json.loads(
        store.read_bytes(f"published/{dataset}/checkpoints/{size:012d}.manifest.json")
    )
    if manifest.get("kind") != "dataset":
        return [f["path"] for f in manifest["files"]]
    files = []

    def load(relative: str, _digest: str) -> dict:
        return json.loads(store.read_bytes(f"published/{dataset}/{relative}"))

    for head in manifest["shards"]:
        shard = load(head["manifest_path"], head["manifest_sha256"])
        files += [f["path"] for f in shard_files(head["shard"], shard, load)]
    return files


def _table(store: Store, path: str, columns: list[str]):
    return pq.read_table(pa.BufferReader(store.read_bytes(path)), columns=columns)


def _produced(bootstrap: str, topic: str) -> dict[tuple[int, int], str]:
    """Each record's (partition, offset) and key (the node id), read back from the broker."""
    source = open_source(bootstrap)
    from pipelines.kafka_source import OffsetRange

    keys = {}
    for partition, end in source.high_watermarks(topic).items():
        batch = source.read(OffsetRange(topic, partition, 0, end))
        for offset, key in zip(
            batch.column("offset").to_pylist(), batch.column("key").to_pylist(), strict=True
        ):
            keys[(partition, offset)] = (key or b"").decode()
    return keys


class TcpRelay:
    """A real TCP relay from a loopback port to a target: close it to make the target unreachable.

    Used to take the chain away from a running process and give it back on the same address,
    without losing the node's state.
    """

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port, self.port = target_port, port
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: reopenable
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._connections = []

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
