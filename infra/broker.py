"""The Kafka-protocol broker for local use: Tansu on loopback, with memory storage.

Users with a real Kafka cluster never start this; they point ``--bootstrap`` at their cluster.
Nothing outside this module knows the broker is Tansu.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import processes
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


def _paths(state_dir: Path) -> tuple[Path, Path]:
    return state_dir / "broker.pid", state_dir / "broker.log"


def start_broker(state_dir: Path, port: int | None = None, timeout: float = 20.0) -> Broker:
    """Start Tansu on ``127.0.0.1:port`` and wait until a metadata request succeeds."""
    binary = ensure_tansu()
    port = port or free_port()
    pid_path, log_path = _paths(state_dir)
    if processes.alive(processes.read_pid(pid_path)):
        raise RuntimeError(f"a broker is already running (pid file {pid_path}); stop it first")
    url = f"tcp://127.0.0.1:{port}"
    pid = processes.spawn(
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        log_path=log_path,
        pid_path=pid_path,
    )
    broker = Broker(pid=pid, port=port, log_path=log_path)
    try:
        wait_until(
            lambda: not processes.alive(pid) or broker_ready(broker.bootstrap),
            timeout=timeout,
            what=f"the broker on {broker.bootstrap} to answer a metadata request",
        )
    except TimeoutError:
        processes.stop(pid_path)
        raise
    if not processes.alive(pid):
        pid_path.unlink(missing_ok=True)
        raise RuntimeError(f"the broker exited at start; see {log_path}")
    return broker


def stop_broker(state_dir: Path) -> bool:
    """Stop the broker recorded in ``state_dir``; True if one was running."""
    pid_path, _ = _paths(state_dir)
    return processes.stop(pid_path)


def broker_pid(state_dir: Path) -> int | None:
    pid_path, _ = _paths(state_dir)
    pid = processes.read_pid(pid_path)
    return pid if processes.alive(pid) else None


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
