"""An append-only Merkle log on disk: every complete node of the tree, level by level.

Files in the log's directory (all hashes 32 bytes, raw, concatenated in index order):

- ``leaves.bin``: level 0, the leaf hashes in leaf order;
- ``levels/NN.bin`` for ``NN`` = 01, 02, …: level ``l`` holds node ``i`` = MTH(D[i·2^l : (i+1)·2^l])
  for every *complete* node, i.e. ``size >> l`` nodes;
- ``frontier.json``: the tree size and its compact range (docs/proof-format.md §6); the size
  written here is the log's size, so a crash halfway through an append leaves the previous
  checkpoint intact.

Why every level: any subtree an RFC 9162 proof needs is either one complete node (one read) or
the right edge of the tree, the fold of at most log2(n) complete nodes. An inclusion or
consistency proof therefore costs O(log n) reads against any tree size the log has had, without
rereading the leaves; the interior levels add one more hash per leaf (2n hashes in all).
Appending writes the new leaves and the O(batch + log n) nodes they complete. Appends are
positional (``append_at``): redoing a batch after a crash cuts every level back and rewrites
exactly the same nodes.

A log has an id (``LogRef.log_id``): the dataset id for a dataset's own log (the default), or a
shard id such as ``radio_kpi.v1/node-telemetry.p3``. It names the log in proof bundles and keys
its anchors on chain (``SHA-256(log id)``).
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from proofs.documents import parse_document
from proofs.merkle import HASH_SIZE, MerkleFrontier, node_hash
from proofs.merkle_proofs import consistency_path, inclusion_path


@dataclass(frozen=True)
class LogRef:
    """Where a Merkle log lives and what it is called; see the module docstring."""

    log_id: str
    directory: Path

    @classmethod
    def for_dataset(cls, dataset_dir: Path) -> LogRef:
        """A dataset's own log: ``<dataset folder>/log``, named by the dataset id."""
        return cls(dataset_dir.name, dataset_dir / "log")


class DatasetLog:
    def __init__(self, directory: Path | LogRef, log_id: str | None = None) -> None:
        if isinstance(directory, LogRef):
            directory, log_id = directory.directory, directory.log_id
        self.directory = Path(directory)
        # Default: the dataset's own log, <published>/<dataset>/log, named by the dataset.
        self.log_id = log_id or self.directory.parent.name
        self.leaves_path = self.directory / "leaves.bin"
        self.frontier_path = self.directory / "frontier.json"
        self._nodes = _NodeReader(self)  # level files stay open between proofs
        weakref.finalize(self, self._nodes.close)

    def close(self) -> None:
        """Close the level files kept open for proofs (they reopen on demand)."""
        self._nodes.close()

    @property
    def ref(self) -> LogRef:
        return LogRef(self.log_id, self.directory)

    @property
    def size(self) -> int:
        return self._frontier().size

    def root(self, tree_size: int | None = None) -> bytes:
        """The root now, or at an earlier ``tree_size`` (O(log n) reads)."""
        if tree_size is None:
            return self._frontier().root()
        return self.frontier_at(tree_size).root()

    def level_path(self, level: int) -> Path:
        return self.leaves_path if level == 0 else self.directory / "levels" / f"{level:02d}.bin"

    def __enter__(self) -> DatasetLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def leaf_hashes(self, start: int = 0, end: int | None = None) -> list[bytes]:
        end = self.size if end is None else end
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"leaf range [{start}, {end}) is outside the log of size {self.size}")
        with self.leaves_path.open("rb") as handle:
            handle.seek(start * HASH_SIZE)
            data = handle.read((end - start) * HASH_SIZE)
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

    # -- proofs ------------------------------------------------------------------------------

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """PATH(index, D[tree_size]) (default: the current size) from the stored nodes."""
        tree_size = self._checked_size(tree_size)
        return inclusion_path(tree_size, index, self._nodes.subtree_root)

    def consistency_proof(self, old_size: int, tree_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[tree_size]) (default: the current size) from the stored nodes."""
        tree_size = self._checked_size(tree_size)
        return consistency_path(tree_size, old_size, self._nodes.subtree_root)

    def frontier_at(self, tree_size: int) -> MerkleFrontier:
        """The compact range of the tree's first ``tree_size`` leaves: one node per bit set."""
        return self._stored_frontier(self._checked_size(tree_size))

    def _stored_frontier(self, tree_size: int) -> MerkleFrontier:
        hashes = []
        for level in reversed(range(tree_size.bit_length())):
            if tree_size >> level & 1:
                hashes.append(self._nodes.node(level, (tree_size >> level) - 1).hex())
        return MerkleFrontier.from_dict({"size": tree_size, "hashes": hashes})

    # -- appending ---------------------------------------------------------------------------

    def append_at(self, start: int, leaf_hashes: Sequence[bytes]) -> tuple[int, bytes]:
        """Write ``leaf_hashes`` as leaves ``start…``; return the new (size, root).

        ``start`` must not exceed the current size. When it is smaller (a batch being redone),
        every level is cut back to ``start`` first: nothing anchored is ever cut, because the
        driver only redoes batches whose checkpoint was not anchored.
        """
        size = self.size
        if start > size:
            raise ValueError(f"cannot append at {start}: the log has only {size} leaves")
        new = list(leaf_hashes)
        if not (set(map(type, new)) <= {bytes} and set(map(len, new)) <= {HASH_SIZE}):
            raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._nodes.close()  # a level file may have been recreated (_complete_levels)
        self._complete_levels(start)
        self._write_levels(start, new)
        frontier = self._stored_frontier(start + len(new))
        partial = self.frontier_path.with_suffix(".partial")
        partial.write_text(json.dumps(frontier.to_dict(), sort_keys=True) + "\n")
        os.replace(partial, self.frontier_path)  # the commit point: the log now has this size
        return frontier.size, frontier.root()

    def _write_levels(self, start: int, new: list[bytes]) -> None:
        """Write level 0 from ``start`` and every interior node the new leaves complete."""
        new_size = start + len(new)
        level, first = 0, start  # ``new`` holds nodes first… of ``level``
        while True:
            _write_nodes(self.level_path(level), first, new)
            parent_first, parent_end = first >> 1, new_size >> (level + 1)
            if parent_end <= parent_first:
                # Cut stale nodes above (a redo that shrank); none can be complete any more.
                upper = level + 1
                while self.level_path(upper).exists():
                    _truncate(self.level_path(upper), new_size >> upper)
                    upper += 1
                return
            if first & 1:  # the first new node's left sibling is already on disk
                new = [self._nodes.node(level, first - 1), *new]
            pairs = zip(new[0::2], new[1::2], strict=False)  # an odd last node waits for its pair
            new = [sha256(b"\x01" + a + b).digest() for a, b in pairs]
            level, first = level + 1, parent_first

    def _complete_levels(self, size: int) -> None:
        """Make every level hold its ``size >> l`` nodes (rebuilding a missing or short level,
        e.g. a log written before interior levels were stored), and nothing after them."""
        for level in range(size.bit_length()):
            path, count = self.level_path(level), size >> level
            if count == 0:
                break
            have = path.stat().st_size // HASH_SIZE if path.exists() else 0
            if have < count:
                if level == 0:
                    raise ValueError(f"{path} holds {have} leaves, the log says {size}")
                below = _read_nodes(self.level_path(level - 1), 0, 2 * count)
                parents = [node_hash(a, b) for a, b in zip(below[0::2], below[1::2], strict=True)]
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_nodes(path, 0, parents)
            else:
                _truncate(path, count)

    # -- helpers -----------------------------------------------------------------------------

    def _checked_size(self, tree_size: int | None) -> int:
        size = self.size
        if tree_size is None:
            return size
        if isinstance(tree_size, bool) or not isinstance(tree_size, int):
            raise ValueError(f"tree size must be an integer, not {tree_size!r}")
        if not 0 <= tree_size <= size:
            raise ValueError(f"tree size {tree_size} is outside the log of size {size}")
        return tree_size

    def _frontier(self) -> MerkleFrontier:
        if not self.frontier_path.exists():
            return MerkleFrontier()
        return MerkleFrontier.from_dict(parse_document(self.frontier_path.read_bytes()))


class _NodeReader:
    """Reads complete nodes by (level, index) with ``pread``, each level's file opened once.

    Files are written in place (never replaced), so an open file sees later appends.
    """

    def __init__(self, log: DatasetLog) -> None:
        self._directory = str(log.directory)
        self._fds: dict[int, int] = {}

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def node(self, level: int, index: int) -> bytes:
        fd = self._fds.get(level)
        if fd is None:
            fd = self._fds[level] = os.open(self._path(level), os.O_RDONLY)
        data = os.pread(fd, HASH_SIZE, index * HASH_SIZE)
        if len(data) != HASH_SIZE:
            raise ValueError(f"{self._path(level)} has no node {index}: log damaged")
        return data

    def _path(self, level: int) -> str:
        name = "leaves.bin" if level == 0 else os.path.join("levels", f"{level:02d}.bin")
        return os.path.join(self._directory, name)

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) of an RFC 9162 subtree: the right fold of its complete nodes."""
        width = end - start
        if width < 1 or start % (1 << (width - 1).bit_length()):
            raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 9162 tree")
        if width & (width - 1) == 0:  # a complete subtree: one stored node
            level = width.bit_length() - 1
            return self.node(level, start >> level)
        parts = []
        for level in reversed(range(width.bit_length())):
            if width >> level & 1:
                parts.append(self.node(level, start >> level))
                start += 1 << level
        result = parts[-1]
        for left in reversed(parts[:-1]):
            result = node_hash(left, result)
        return result


def _read_nodes(path: Path, start: int, end: int) -> list[bytes]:
    with path.open("rb") as handle:
        handle.seek(start * HASH_SIZE)
        data = handle.read((end - start) * HASH_SIZE)
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _write_nodes(path: Path, first: int, nodes: list[bytes]) -> None:
    """Write ``nodes`` at index ``first`` and cut whatever followed them.

    Only the leaves are forced to disk: interior levels are derived from them (a short level is
    rebuilt on the next append), and a damaged interior node can only make a proof fail to
    verify against the anchored root, never make a false one verify. One fsync per append
    instead of one per level (each costs milliseconds here).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("r+b" if path.exists() else "wb") as handle:
        handle.truncate(first * HASH_SIZE)
        handle.seek(first * HASH_SIZE)
        handle.write(b"".join(nodes))
        if path.name == "leaves.bin":
            handle.flush()
            os.fsync(handle.fileno())


def _truncate(path: Path, count: int) -> None:
    if path.exists() and path.stat().st_size > count * HASH_SIZE:
        with path.open("r+b") as handle:
            handle.truncate(count * HASH_SIZE)
