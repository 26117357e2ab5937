"""The leaf files beside a batch's published files, hashed a group of files at a time.

Each published Parquet file gets its rows' leaf hashes beside it (``proofs/shard_log.py``). The
vectorized leaf encoding costs mostly per call (~1.7 ms for a file of any size up to a few
hundred rows: a few compute calls per column), and a small batch writes one file per dataset and
partition: files with the same columns are therefore encoded together, once their rows add up
to ``BATCH_ROWS`` or at the end of the event-time step, and the hashes split between them. The
hashes are the same as one file at a time (leaves depend on each row alone); a row that cannot
be encoded is reported for its own file, as before.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from proofs.leaf_rules import LeafEncodingError
from proofs.leaves import leaf_hashes_for_batch
from proofs.shard_log import write_leaf_file, write_leaf_hashes

# Rows held before they are encoded: past it, a backlog's files are encoded as they come (their
# cost is then per row) and the rows are not kept in memory until the step ends.
BATCH_ROWS = 16_384


class PendingLeaves:
    """Leaf files to write: ``add`` each published file's rows, ``write`` before the batch is
    journaled (a redo writes the same files again)."""

    def __init__(self) -> None:
        self._files: list[tuple[Path, pa.Table]] = []
        self._rows = 0

    def add(self, parquet_file: Path, rows: pa.RecordBatch | pa.Table) -> None:
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
        self._files.append((parquet_file, table))
        self._rows += table.num_rows
        if self._rows >= BATCH_ROWS:
            self.write()

    def write(self) -> None:
        """Write every pending leaf file, a group of files with the same columns at a time."""
        files, self._files, self._rows = self._files, [], 0
        groups: list[list[tuple[Path, pa.Table]]] = []
        for file in files:
            group = next(
                (g for g in groups if g[0][1].schema.equals(file[1].schema, check_metadata=True)),
                None,
            )
            if group is None:
                groups.append([file])
            else:
                group.append(file)
        for group in groups:
            _write_group(group)


def _write_group(group: list[tuple[Path, pa.Table]]) -> None:
    if len(group) == 1:
        write_leaf_file(*group[0])
        return
    try:
        hashes = leaf_hashes_for_batch(pa.concat_tables([rows for _, rows in group]))
    except LeafEncodingError as together:  # named for its own file and row: file by file
        for parquet_file, rows in group:
            write_leaf_file(parquet_file, rows)
        raise AssertionError("leaf encoding failed for the files together only") from together
    first = 0
    for parquet_file, rows in group:
        write_leaf_hashes(parquet_file, hashes[first : first + rows.num_rows])
        first += rows.num_rows
