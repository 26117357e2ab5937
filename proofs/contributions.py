"""Contribution tables: how many of a checkpoint's rows each node produced, as a Merkle sum tree.

A sale's node share is split between the owners of the nodes whose rows are in the licensed
checkpoint, pro rata to rows. For each checkpoint the pipeline writes the table
(``checkpoints/<tree size>.contributions.json``) and its root goes into the manifest and, for a
minted asset, on chain (``DataAsset.commitContributions``). A node owner claims with a path of
this tree (``DataLicences.claim``), and anyone can recount the table from the published rows
(``recount``) and name every node whose count differs (``differences``).

The tree (docs/data-assets.md): leaves are the table's entries sorted by node token id
(``uint256(keccak256(UTF-8 node id))``, the node registry's token id), each
``leaf = SHA-256(0x00 ‖ token id (32 bytes) ‖ rows (8 bytes, big-endian))`` with sum ``rows``;
``node = SHA-256(0x01 ‖ left ‖ left sum (8) ‖ right ‖ right sum (8))`` with sum
``left sum + right sum``; an unbalanced tree splits at the largest power of two below its size
(RFC 9162). Every inner hash commits to its children's sums, so a path proves the leaf's rows
*and* that the whole tree sums to the root's sum: a count cannot be raised without the total,
which the contract holds, changing too.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from proofs.documents import parse_document
from proofs.jcs import MAX_SAFE_INTEGER, canonicalize, serialize_string

TABLE_VERSION = 1
NODE_COLUMN = "node_id"
MAX_ROWS = 2**64 - 1
TREE = "Merkle sum tree, SHA-256 (docs/data-assets.md)"  # the table's own description


class ContributionError(ValueError):
    """A contribution table or proof that is malformed or does not verify."""


@functools.lru_cache(maxsize=1 << 16)  # a table is rebuilt per checkpoint over the same nodes
def node_token_id(node_id: str) -> int:
    """The node registry's token id of ``node_id``: keccak-256 of its UTF-8 bytes."""
    from eth_utils import keccak

    return int.from_bytes(keccak(node_id.encode("utf-8")), "big")


def leaf_hash(token_id: int, rows: int) -> bytes:
    return hashlib.sha256(b"\x00" + token_id.to_bytes(32, "big") + rows.to_bytes(8, "big")).digest()


def _node(left: tuple[bytes, int], right: tuple[bytes, int]) -> tuple[bytes, int]:
    data = b"\x01" + left[0] + left[1].to_bytes(8, "big") + right[0] + right[1].to_bytes(8, "big")
    return hashlib.sha256(data).digest(), left[1] + right[1]


def _split(n: int) -> int:
    """The largest power of two below ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True)
class SumPath:
    """A leaf's path to the root: siblings bottom-up, their sums, bit i: sibling i is left."""

    siblings: tuple[bytes, ...]
    sums: tuple[int, ...]
    left_mask: int

    def as_json(self) -> dict[str, Any]:
        return {
            "siblings": [s.hex() for s in self.siblings],
            "sums": list(self.sums),
            "left_mask": self.left_mask,
        }


@dataclass(frozen=True)
class ContributionTable:
    """Node id -> rows of one checkpoint, and the sum tree over it."""

    dataset: str
    tree_size: int
    rows_by_node: dict[str, int]

    def __post_init__(self) -> None:
        for node, rows in self.rows_by_node.items():
            if not isinstance(node, str) or not node:
                raise ContributionError(f"a node id must be a non-empty string, not {node!r}")
            if isinstance(rows, bool) or not isinstance(rows, int) or not 0 < rows <= MAX_ROWS:
                raise ContributionError(f"{node}: rows must be a count above zero, not {rows!r}")
        if self.node_rows > MAX_ROWS:  # the tree's sums are 8 bytes, as the contract's total
            raise ContributionError(f"the table's rows add up to more than {MAX_ROWS}")
        if self.node_rows > self.tree_size:
            raise ContributionError(
                f"the table counts {self.node_rows} rows in a checkpoint of {self.tree_size}"
            )

    @property
    def node_rows(self) -> int:
        return sum(self.rows_by_node.values())

    def leaves(self) -> list[tuple[int, str, int]]:
        """(token id, node id, rows), in tree order (by token id)."""
        return list(self._leaves)

    def root(self) -> bytes:
        """The root hash; 32 zero bytes for a table without rows (the contract's "none")."""
        return self._root_hash

    # Worked out once per table (its document, bytes and sections each ask): the table is not
    # changed after it is made.
    @functools.cached_property
    def _leaves(self) -> tuple[tuple[int, str, int], ...]:
        entries = sorted((node_token_id(n), n, r) for n, r in self.rows_by_node.items())
        for (a, node_a, _), (b, node_b, _) in pairwise(entries):
            if a == b:
                raise ContributionError(f"nodes {node_a!r} and {node_b!r} share a token id")
        return tuple(entries)

    @functools.cached_property
    def _root_hash(self) -> bytes:
        level = [(leaf_hash(t, r), r) for t, _, r in self._leaves]
        if not level:
            return b"\x00" * 32
        # Level by level, pairing left to right and carrying an odd last node up as it is: the
        # same tree as splitting at the largest power of two below the size (RFC 9162 2.1.1;
        # ``path`` splits, and each entry's path ends at this root), without the recursion.
        while len(level) > 1:
            paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            level = paired + level[-1:] if len(level) % 2 else paired
        return level[0][0]

    def path(self, node_id: str) -> tuple[int, SumPath]:
        """The node's rows and its path; ``ContributionError`` if the table does not list it."""
        leaves = self.leaves()
        index = next((i for i, (_, n, _) in enumerate(leaves) if n == node_id), None)
        if index is None:
            raise ContributionError(f"node {node_id!r} has no rows in this table")
        hashed = [(leaf_hash(t, r), r) for t, _, r in leaves]
        siblings: list[tuple[bytes, int]] = []
        mask_bits: list[int] = []
        _path(hashed, index, siblings, mask_bits)
        mask = sum(bit << i for i, bit in enumerate(mask_bits))
        path = SumPath(tuple(h for h, _ in siblings), tuple(s for _, s in siblings), mask)
        return leaves[index][2], path

    def document(self) -> dict[str, Any]:
        nodes = [
            {"node_id": n, "node_token_id": f"0x{t:064x}", "rows": r} for t, n, r in self.leaves()
        ]
        return {
            "contribution_version": TABLE_VERSION,
            "dataset": self.dataset,
            "tree_size": self.tree_size,
            "node_rows": self.node_rows,
            "root": self.root().hex(),
            "tree": TREE,
            "nodes": nodes,
        }

    def to_bytes(self) -> bytes:
        """The document's canonical JSON (RFC 8785), written directly: its members are known and
        ASCII-named, so their order is fixed; every count must be a safe integer, else the
        generic canonicalization says why it is not."""
        if max(self.tree_size, self.node_rows) > MAX_SAFE_INTEGER:
            return canonicalize(self.document())
        nodes = ",".join(
            f'{{"node_id":{serialize_string(n)},"node_token_id":"0x{t:064x}","rows":{r}}}'
            for t, n, r in self._leaves
        )
        text = (
            f'{{"contribution_version":{TABLE_VERSION},"dataset":{serialize_string(self.dataset)},'
            f'"node_rows":{self.node_rows},"nodes":[{nodes}],"root":"{self.root().hex()}",'
            f'"tree":{serialize_string(TREE)},"tree_size":{self.tree_size}}}'
        )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # an unpaired surrogate: refused as the generic form does
            return canonicalize(self.document())


def _root(leaves: list[tuple[bytes, int]]) -> tuple[bytes, int]:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def _path(leaves: list[tuple[bytes, int]], index: int, out: list, mask: list[int]) -> None:
    """Append the siblings of ``leaves[index]`` bottom-up (recursion depth: log2 of the size)."""
    if len(leaves) == 1:
        return
    k = _split(len(leaves))
    if index < k:
        _path(leaves[:k], index, out, mask)
        out.append(_root(leaves[k:]))
        mask.append(0)
    else:
        _path(leaves[k:], index - k, out, mask)
        out.append(_root(leaves[:k]))
        mask.append(1)


def verify_path(root: bytes, total: int, token_id: int, rows: int, path: SumPath) -> bool:
    """What ``DataLicences.claim`` checks: the leaf's path ends at ``root`` with sum ``total``."""
    if len(path.siblings) != len(path.sums) or len(path.siblings) > 64:
        return False
    node = (leaf_hash(token_id, rows), rows)
    for i, (sibling, sibling_sum) in enumerate(zip(path.siblings, path.sums, strict=True)):
        other = (sibling, sibling_sum)
        node = _node(other, node) if (path.left_mask >> i) & 1 else _node(node, other)
        if node[1] > MAX_ROWS:
            return False
    return node == (root, total)


def parse_table(raw: bytes) -> ContributionTable:
    """A published table, checked: canonical bytes, consistent fields, and its stated root."""
    try:
        doc = parse_document(raw)
    except ValueError as error:  # UnicodeDecodeError too
        raise ContributionError(f"not JSON ({error})") from None
    if not isinstance(doc, dict) or doc.get("contribution_version") != TABLE_VERSION:
        raise ContributionError(f"not a contribution table of version {TABLE_VERSION}")
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise ContributionError("nodes must be a list of objects")
    rows_by_node: dict[str, int] = {}
    for entry in nodes:
        node = entry.get("node_id")
        if not isinstance(node, str) or node in rows_by_node:
            raise ContributionError(f"node id {node!r} is missing or listed twice")
        rows_by_node[node] = entry.get("rows")
    size = doc.get("tree_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ContributionError("tree_size must be a count")
    table = ContributionTable(str(doc.get("dataset")), size, rows_by_node)
    if table.document() != doc:
        raise ContributionError("the table's root, totals or token ids are not its entries'")
    return table


def recount(dataset: str, tree_size: int, files: Iterable[Path]) -> ContributionTable:
    """The table counted from published Parquet files (rows with a null node id count for
    nobody); ``files`` must be exactly the checkpoint's files."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns: list = []
    for path in files:
        with pq.ParquetFile(path) as file:  # one opening for the schema and the column
            if NODE_COLUMN not in file.schema_arrow.names:
                continue
            column = file.read(columns=[NODE_COLUMN]).column(NODE_COLUMN)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise ContributionError(f"{path}: node ids must be strings, not {column.type}")
        columns.extend(column.cast(pa.string()).chunks)
    if not columns:
        return ContributionTable(dataset, tree_size, {})
    # Counted once over every file's column: the nodes repeat from file to file.
    counted = pc.value_counts(pa.chunked_array(columns, pa.string()).drop_null())
    nodes, rows = counted.field("values").to_pylist(), counted.field("counts").to_pylist()
    return ContributionTable(dataset, tree_size, dict(zip(nodes, rows, strict=True)))


def differences(published: ContributionTable, counted: ContributionTable) -> list[dict[str, Any]]:
    """Every node whose published count is not what the rows say, by node id."""
    nodes = sorted(set(published.rows_by_node) | set(counted.rows_by_node))
    return [
        {
            "node_id": n,
            "published": published.rows_by_node.get(n, 0),
            "counted": counted.rows_by_node.get(n, 0),
        }
        for n in nodes
        if published.rows_by_node.get(n, 0) != counted.rows_by_node.get(n, 0)
    ]


def table_path(dataset_dir: Path, tree_size: int) -> Path:
    return dataset_dir / "checkpoints" / f"{tree_size:012d}.contributions.json"
