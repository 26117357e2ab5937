"""The SQL of the duplicate check (``sinks/key_index.repeated_keys_of_logs``): for one dataset,
which of a batch's new rows repeat a natural key, within their log in the batch or in the
log's index of earlier batches. Text only: the caller runs it, one statement for every dataset
of a batch.
"""

from __future__ import annotations


def repeats_query(position: int, keys: list[str], rows: str, index: str) -> tuple[str, str]:
    """CTEs over one dataset's new rows and the SELECT of their repeats, tagged with
    ``position``: (position, partition, offset, offset of the key's first row in the batch —
    its own when the earlier row is in another batch).

    ``keys``: the dataset's natural key; ``rows``: a FROM item over its new files, each row with
    its ``log``, ``file_index`` and ``file_row_number`` (leaf order); ``index``: its key table.
    The SELECT reads the statement's ``$batch`` (the batch's own keys are no repeat)."""
    columns = ", ".join(f'"{k}"' for k in keys)
    matches = " AND ".join(f'i."{k}" = n."{k}"' for k in keys)
    # Within the batch a null key equals a null key, as the rows' window partitions have it.
    same = " AND ".join(f'r."{k}" IS NOT DISTINCT FROM n."{k}"' for k in keys)
    ordered = ", ".join(f'n."{k}"' for k in keys)
    new, repeated, ranked = (f"{name}_{position}" for name in ("new_rows", "repeated", "ranked"))
    # The keys a log repeats within the batch first (a hash aggregate), and the rows of those
    # only ranked in leaf order: a window over every new row sorted them all (a batch of the
    # bench: 18-27 against 22-30 ms).
    ctes = f"""{new} AS MATERIALIZED (
        SELECT log, {columns}, source_partition, source_offset, file_index, file_row_number
        FROM {rows}
    ),
    {repeated} AS MATERIALIZED (
        SELECT log, {columns} FROM {new} GROUP BY ALL HAVING count(*) > 1
    ),
    {ranked} AS MATERIALIZED (
        SELECT n.file_index, n.file_row_number, n.source_partition, n.source_offset,
               row_number() OVER w AS occurrence,
               first_value(n.source_offset) OVER w AS first_offset
        FROM {new} n SEMI JOIN {repeated} r ON r.log = n.log AND {same}
        WINDOW w AS (PARTITION BY n.log, {ordered} ORDER BY n.file_index, n.file_row_number)
    )"""
    # Rows repeating a key within their log in the batch, then the other rows (a key's first
    # in the batch: told apart by their place, as a record may have several rows) whose key
    # another batch published in that log. DuckDB builds the join's hash table on the batch's
    # (smaller) side and pushes its key ranges into the index scan, skipping old row groups.
    select = (
        f"SELECT {position}, source_partition, source_offset, first_offset "
        f"FROM {ranked} WHERE occurrence > 1 UNION ALL "
        f"SELECT DISTINCT {position}, n.source_partition, n.source_offset, n.source_offset "
        f"FROM {new} n JOIN {index} i ON i.log = n.log AND {matches} "
        f"WHERE i.batch_id <> $batch AND NOT EXISTS (SELECT 1 FROM {ranked} r "
        f"WHERE r.occurrence > 1 AND r.file_index = n.file_index "
        f"AND r.file_row_number = n.file_row_number)"
    )
    return ctes, select
