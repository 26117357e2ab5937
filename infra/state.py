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


_REDO = "it only records what `rda infra up` started: remove it, then run `rda infra up` again"


class InfraStateDamaged(ValueError):
    """The state directory's ``infra.json`` is there but is not what ``rda infra up`` saved."""


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
        """What ``rda infra up`` saved; nothing started when there is no file. A file that is
        not such a record raises ``InfraStateDamaged`` naming it (a traceback, before)."""
        path = (directory or state_dir()) / "infra.json"
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as error:
            raise InfraStateDamaged(f"{path} cannot be read ({error}); {_REDO}") from None
        try:
            return cls(**document)
        except TypeError:  # not an object, or a field that is none of ours
            raise InfraStateDamaged(f"{path} is not what `rda infra up` saves; {_REDO}") from None

    def save(self, directory: Path | None = None) -> None:
        path = (directory or state_dir()) / "infra.json"
        partial = path.with_name(path.name + ".partial")  # never read half written
        partial.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(partial, path)

    @staticmethod
    def clear(directory: Path | None = None) -> None:
        ((directory or state_dir()) / "infra.json").unlink(missing_ok=True)
