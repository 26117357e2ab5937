"""How a batch's record budget is shared between the partitions it reads: fairly.

Under a backlog a batch cannot read everything; given in partition order, the budget drained
partition 0 while partitions 1–3 waited. Shares are filled like water: every partition with
records waiting gets an equal part, what a short partition does not need goes to the others,
and the few records that do not divide evenly start at a partition that turns with each batch.
"""

from __future__ import annotations


def fair_shares(backlogs: dict[int, int], budget: int, turn: int = 0) -> dict[int, int]:
    """Records to read per partition: at most its backlog, at most ``budget`` in all."""
    shares = dict.fromkeys(backlogs, 0)
    waiting = sorted(p for p, n in backlogs.items() if n > 0)
    while budget > 0 and waiting:
        each = budget // len(waiting)
        if each == 0:  # fewer records left than partitions: one each, from the turning point
            start = turn % len(waiting)
            for partition in (waiting[start:] + waiting[:start])[:budget]:
                shares[partition] += 1
            break
        for partition in waiting:
            given = min(each, backlogs[partition] - shares[partition])
            shares[partition] += given
            budget -= given
        waiting = [p for p in waiting if shares[p] < backlogs[p]]
    return shares
