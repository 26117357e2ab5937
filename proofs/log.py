"""A dataset's append-only Merkle log on disk.

``leaves.bin`` holds the tree's leaf hashes (32 bytes each, in leaf order), so any inclusion or
consistency proof can be produced without re-reading the data; ``frontier.json`` holds the
compact range that lets a batch be appended in O(batch + log n). Appends are positional
(``append_at``): redoing a batch after a crash rewrites exactly the same leaves at the same place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from proofs.merkle import MerkleFrontier

HASH_SIZE = 32


class DatasetLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.leaves_path = directory / "leaves.bin"
        self.frontier_path = directory / "frontier.json"

    @property
    def size(self) -> int:
        return self._frontier().size

    def root(self) -> bytes:
        return self._frontier().root()

    def leaf_hashes(self, start: int = 0, end: int | None = None) -> list[bytes]:
        end = self.size if end is None else end
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"leaf range [{start}, {end}) is outside the log of size {self.size}")
        with self.leaves_path.open("rb") as handle:
            handle.seek(start * HASH_SIZE)
            data = handle.read((end - start) * HASH_SIZE)
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

    def append_at(self, start: int, leaf_hashes: Sequence[bytes]) -> tuple[int, bytes]:
        """Write ``leaf_hashes`` as leaves ``start…``; return the new (size, root).

        ``start`` must not exceed the current size. When it is smaller (a batch being redone),
        the log is cut back to ``start`` first: nothing anchored is ever cut, because the
        driver only redoes batches whose checkpoint was not anchored.
        """
        frontier = self._frontier()
        if start > frontier.size:
            raise ValueError(f"cannot append at {start}: the log has only {frontier.size} leaves")
        if start < frontier.size:
            frontier = MerkleFrontier()
            frontier.extend(self.leaf_hashes(0, start))
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.leaves_path.open("r+b" if self.leaves_path.exists() else "wb") as handle:
            handle.truncate(start * HASH_SIZE)
            handle.seek(start * HASH_SIZE)
            handle.write(b"".join(leaf_hashes))
            handle.flush()
            os.fsync(handle.fileno())
        frontier.extend(leaf_hashes)
        partial = self.frontier_path.with_suffix(".partial")
        partial.write_text(json.dumps(frontier.to_dict(), sort_keys=True) + "\n")
        os.replace(partial, self.frontier_path)
        return frontier.size, frontier.root()

    def _frontier(self) -> MerkleFrontier:
        if not self.frontier_path.exists():
            return MerkleFrontier()
        return MerkleFrontier.from_dict(json.loads(self.frontier_path.read_text()))
