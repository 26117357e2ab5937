"""A local S3-compatible object store on loopback: the broker's persistent storage.

``s3rver`` (npm ``s3rver@3.7.1``) is a real S3 server that keeps its objects in a directory.
``rda infra up`` starts it with one bucket, ``tansu``, and gives the broker
``--storage-engine s3://tansu/`` against it: topics, records and committed offsets then
survive a restart (or a ``kill -9``) of the broker, and of the store itself. The directory is
kept by ``rda infra down``; ``rda infra up --storage memory`` does without it.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra import processes
from infra.tools import ensure_npm_package, free_port

S3RVER_PACKAGE = "s3rver@3.7.1"
BUCKET = "tansu"
# s3rver accepts its own well-known keys; nothing here is a secret (loopback only).
ACCESS_KEY = SECRET_KEY = "S3RVER"
REGION = "us-east-1"


@dataclass(frozen=True)
class ObjectStore:
    """A running s3rver."""

    pid: int
    port: int
    directory: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """What an S3 client (the broker) needs in its environment to use this store."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }


def start_object_store(
    state_dir: Path, directory: Path, port: int | None = None, timeout: float = 30.0
) -> ObjectStore:
    """Start s3rver on ``127.0.0.1:port`` storing under ``directory``, with the broker's bucket."""
    binary = ensure_npm_package(S3RVER_PACKAGE, "s3rver")
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        str(binary), "-d", str(directory), "-a", "127.0.0.1", "-p", str(port), "--silent",
        "--configure-bucket", BUCKET,
    ]  # fmt: skip
    store = ObjectStore(0, port, directory)
    pid = processes.start_service(
        "s3rver",
        command,
        state_dir,
        ready=lambda: _bucket_answers(store.endpoint),
        timeout=timeout,
        what=f"s3rver on 127.0.0.1:{port} to list bucket {BUCKET}",
    )
    return ObjectStore(pid, port, directory)


def stop_object_store(state_dir: Path) -> bool:
    """Stop the s3rver recorded in ``state_dir``; True if one was running. Its data stays."""
    return processes.stop_service(state_dir, "s3rver")


def _bucket_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/{BUCKET}?list-type=2", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
