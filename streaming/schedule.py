"""How a batch's record budget is shared between the partitions it reads.

Under a backlog a batch cannot read everything. Given in partition order, the budget drained
partition 0 while partitions 1–3 waited. Shared between every partition, a small budget bought
each a few thousand records for the fixed cost of reading a partition in a batch: its work item,
its event-time state, its shard manifests, ~35 ms of CPU (measured on the bench's backlog: 8
batches of 4 partitions cost 2.6 CPU-s more than one batch of the same records).

So a batch reads as many partitions as its budget gives ``least`` records each (one at least),
taken in turn: the partitions with records waiting, in order, from a partition that moves on
with each batch (``budgets_read``), so each is read at least once in as many batches as there
are partitions, however far behind the others are (a hot partition does not starve a quiet
one), and a restart goes on with the round where it was. The budget is shared between them
like water: each an equal part, what a short partition does not need going to the others; what
they all leave goes to the next partitions in turn, as few as can take it. A backlog that fits
the budget is read whole, from every partition.
"""

from __future__ import annotations

# Records a partition is worth reading for in a batch: its fixed cost is then a tenth or less of
# its records' (~18 µs of CPU a record from Kafka to the anchor).
MIN_PARTITION_SHARE = 16_384


def budgets_read(starts: dict[int, int], budget: int) -> int:
    """The turn of the next batch: how many budgets the partitions' offsets have come (where
    each stands, as planned, summed). Under a backlog every batch reads its whole budget, so
    the turn moves on by one a batch, for this worker's partitions alone (another worker's
    batches move others'), and a restart goes on from where the journal says it stands."""
    return sum(starts.values()) // max(budget, 1)


def fair_shares(
    backlogs: dict[int, int], budget: int, least: int = 0, turn: int = 0
) -> dict[int, int]:
    """Records to read per partition: at most its backlog, at most ``budget`` in all; under a
    backlog, only as many partitions as get ``least`` records each (0: every partition), the
    first of them with records waiting from the ``turn``-th partition on (round the end)."""
    shares = dict.fromkeys(backlogs, 0)
    if not backlogs:
        return shares
    # The turn goes round every partition, waiting or not: each is first in turn once in so
    # many batches, whichever others have records waiting meanwhile.
    partitions = sorted(backlogs)
    start = turn % len(partitions)
    in_turn = [p for p in partitions[start:] + partitions[:start] if backlogs[p] > 0]
    if least <= 0 or sum(backlogs[p] for p in in_turn) <= budget:
        _pour(shares, backlogs, in_turn, budget)
        return shares
    taken = 0
    while budget > 0 and taken < len(in_turn):  # what those in turn leave: to the next ones
        room = max(1, budget // least)
        budget = _pour(shares, backlogs, in_turn[taken : taken + room], budget)
        taken += room
    return shares


def _pour(
    shares: dict[int, int], backlogs: dict[int, int], partitions: list[int], budget: int
) -> int:
    """Share ``budget`` between ``partitions`` like water; the budget left once each has its
    whole backlog."""
    waiting = list(partitions)
    while budget > 0 and waiting:
        each = budget // len(waiting)
        if each == 0:  # fewer records left than partitions: one each, in turn
            for partition in waiting[:budget]:
                shares[partition] += 1
            return 0
        for partition in waiting:
            given = min(each, backlogs[partition] - shares[partition])
            shares[partition] += given
            budget -= given
        waiting = [p for p in waiting if shares[p] < backlogs[p]]
    return budget
