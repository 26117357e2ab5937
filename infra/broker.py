"""The Kafka-protocol broker for local use: Tansu on loopback, with memory storage.

Users with a real Kafka cluster never start this; they point ``--bootstrap`` at their cluster.
Nothing outside this module knows the broker is Tansu.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import processes
from infra.tools import ensure_tansu, free_port, port_open

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


def start_broker(state_dir: Path, port: int | None = None, timeout: float = 20.0) -> Broker:
    """Start Tansu on ``127.0.0.1:port`` and wait until a metadata request succeeds."""
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
        "memory://tansu/",
    ]
    pid = processes.start_service(
        "broker",
        command,
        state_dir,
        ready=lambda: broker_ready(bootstrap),
        timeout=timeout,
        what=f"the broker on {bootstrap} to answer a metadata request",
    )
    return Broker(pid=pid, port=port, log_path=processes.service_paths(state_dir, "broker")[1])


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
