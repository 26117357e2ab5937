"""What ``rda infra up`` started, so later commands find the broker and chain by default."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.tools import REPO_ROOT


def state_dir() -> Path:
    """``RDA_STATE_DIR`` or ``.state/`` in the repository root."""
    path = Path(os.environ.get("RDA_STATE_DIR", REPO_ROOT / ".state"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class InfraState:
    kafka_bootstrap: str | None = None
    broker_storage: str = "memory"  # or "persistent": an s3rver under the state directory
    chain_kind: str = "embedded"
    rpc_url: str | None = None
    registry_address: str | None = None
    node_registry_address: str | None = None  # the NodeRegistry deployed beside it
    object_store: str | None = None  # the s3rver's endpoint: data directories s3://BUCKET/…

    @classmethod
    def load(cls, directory: Path | None = None) -> InfraState:
        path = (directory or state_dir()) / "infra.json"
        if not path.exists():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, directory: Path | None = None) -> None:
        path = (directory or state_dir()) / "infra.json"
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @staticmethod
    def clear(directory: Path | None = None) -> None:
        ((directory or state_dir()) / "infra.json").unlink(missing_ok=True)
