"""How a batch's record budget is shared between the partitions it reads.

Under a backlog a batch cannot read everything. Given in partition order, the budget drained
partition 0 while partitions 1–3 waited. Shared between every partition, a small budget bought
each a few thousand records for the fixed cost of reading a partition in a batch: its work item,
its event-time state, its shard manifests, ~35 ms of CPU (measured on the bench's backlog: 8
batches of 4 partitions cost 2.6 CPU-s more than one batch of the same records).

So a batch reads the partitions furthest behind, as many as its budget gives ``least`` records
each (one at least), and shares the budget between them like water: each an equal part, what a
short partition does not need going to the others, then to the partitions left out. A partition
read falls behind the others less, so the next batches take the others: over consecutive
batches each gets its turn, the furthest behind first. A backlog that fits the budget is read
whole, from every partition.
"""

from __future__ import annotations

# Records a partition is worth reading for in a batch: its fixed cost is then a tenth or less of
# its records' (~18 µs of CPU a record from Kafka to the anchor).
MIN_PARTITION_SHARE = 16_384


def fair_shares(backlogs: dict[int, int], budget: int, least: int = 0) -> dict[int, int]:
    """Records to read per partition: at most its backlog, at most ``budget`` in all; under a
    backlog, only as many partitions as get ``least`` records each (0: every partition)."""
    shares = dict.fromkeys(backlogs, 0)
    behind = sorted((p for p, n in backlogs.items() if n > 0), key=lambda p: (-backlogs[p], p))
    room = len(behind)
    if least > 0 and sum(backlogs[p] for p in behind) > budget:
        room = max(1, budget // least)
    for partitions in (behind[:room], behind[room:]):
        budget = _pour(shares, backlogs, partitions, budget)
    return shares


def _pour(
    shares: dict[int, int], backlogs: dict[int, int], partitions: list[int], budget: int
) -> int:
    """Share ``budget`` between ``partitions`` (furthest behind first) like water; the budget
    left once each has its whole backlog."""
    waiting = list(partitions)
    while budget > 0 and waiting:
        each = budget // len(waiting)
        if each == 0:  # fewer records left than partitions: one each, the furthest behind first
            for partition in waiting[:budget]:
                shares[partition] += 1
            return 0
        for partition in waiting:
            given = min(each, backlogs[partition] - shares[partition])
            shares[partition] += given
            budget -= given
        waiting = [p for p in waiting if shares[p] < backlogs[p]]
    return budget
