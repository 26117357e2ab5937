"""The Kafka-protocol broker for local use: Tansu on loopback.

Storage is memory (tests, the demo: nothing to keep) or a local S3-compatible store
(``infra/object_store.py``: what ``rda infra up`` uses, so records and committed offsets
survive a broker restart). Users with a real Kafka cluster never start this; they point
``--bootstrap`` at their cluster. Nothing outside ``infra/`` knows the broker is Tansu.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import processes
from infra.object_store import BUCKET, ObjectStore
from infra.tools import ensure_tansu, free_port, port_open, wait_until

DEFAULT_PORT = 19092


@dataclass(frozen=True)
class Broker:
    """A running local broker."""

    pid: int
    port: int
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_broker(
    state_dir: Path,
    port: int | None = None,
    timeout: float = 20.0,
    store: ObjectStore | None = None,
) -> Broker:
    """Start Tansu on ``127.0.0.1:port`` and wait until a metadata request succeeds.

    With ``store``, the broker keeps everything in that S3-compatible store (its bucket
    ``tansu``); without, in memory.
    """
    binary = ensure_tansu()
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    bootstrap = f"127.0.0.1:{port}"
    command = [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        f"s3://{BUCKET}/" if store is not None else "memory://tansu/",
    ]
    pid = processes.start_service(
        "broker",
        command,
        state_dir,
        ready=lambda: broker_ready(bootstrap),
        timeout=timeout,
        what=f"the broker on {bootstrap} to answer a metadata request",
        env=store.client_env() if store is not None else None,
    )
    if store is not None:
        try:
            recover_partition_ends(bootstrap, timeout)
        except BaseException:
            processes.stop_service(state_dir, "broker")
            raise
    return Broker(pid=pid, port=port, log_path=processes.service_paths(state_dir, "broker")[1])


def recover_partition_ends(bootstrap: str, timeout: float = 20.0) -> None:
    """Fetch every partition once, so the broker knows where each ends before anyone produces.

    Tansu 0.6 on S3 storage does not recover a partition's end offset at restart until the
    partition is fetched: a record produced before that is written at offset 0, *over* the
    stored records (measured: 10 records, ``kill -9``, 10 more produced — the first 10 were
    gone). A fetch (not a ListOffsets) makes it read the end from storage.
    """
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rda-recovery")
    try:
        topics = [t for t in admin.list_topics() if not t.startswith("__")]
    finally:
        admin.close()
    if not topics:
        return
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="rda-recovery",
        max_partition_fetch_bytes=1024,
    )  # fmt: skip
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        wait_until(lambda: _fetched_all(consumer, partitions), timeout, 0, "every partition's end")
    finally:
        consumer.close()


def _fetched_all(consumer, partitions: list) -> bool:
    consumer.poll(timeout_ms=200)
    known = [tp for tp in partitions if consumer.highwater(tp) is not None]
    consumer.pause(*known)
    return len(known) == len(partitions)


def stop_broker(state_dir: Path) -> bool:
    """Stop the broker recorded in ``state_dir``; True if one was running."""
    return processes.stop_service(state_dir, "broker")


def broker_pid(state_dir: Path) -> int | None:
    return processes.service_pid(state_dir, "broker")


def broker_ready(bootstrap: str, timeout_ms: int = 1000) -> bool:
    """True when the broker answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not port_open(host, int(port)):
        return False
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="rda-readiness",
            request_timeout_ms=timeout_ms,
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
