"""What a checkpoint's batch says it skipped: Kafka offsets the broker deleted before they were
read (``batch.lost[]``, docs/proof-format.md), written only when the run accepted that loss.

The verifier cannot tell retention from a publisher's choice, only that the ranges of two
batches leave a gap; it shows what the publisher signed about it, beside the newest
checkpoint's manifest check and each history step's consistency check. The section comes from
the publisher, so it is read as hostile input: a malformed one fails the check with a reason,
and a long one is shown by its count and first ranges.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from proofs.verdict import Check

SHOWN = 5  # ranges named in the detail; the rest counted
_MAX_OFFSET = 2**63  # Kafka offsets are signed 64-bit
# Kafka's legal topic names: nothing a terminal or the printed verdict's markup would read.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class Skipped(NamedTuple):
    ok: bool
    detail: str


def skipped_offsets(manifest: dict[str, Any]) -> Skipped | None:
    """The manifest's declared skipped offsets as a check's detail; None when it has none."""
    batch = manifest.get("batch")
    lost = batch.get("lost") if isinstance(batch, dict) else None
    if lost is None:
        return None
    if not isinstance(lost, list) or not all(map(_is_range, lost)):
        return Skipped(
            False,
            "its batch's lost[] must be a list of {topic, partition, start, end} with "
            "0 <= start < end (docs/proof-format.md)",
        )
    if not lost:
        return None
    offsets = sum(r["end"] - r["start"] for r in lost)
    named = [f"{r['topic']}.p{r['partition']} {r['start']}-{r['end'] - 1}" for r in lost[:SHOWN]]
    if len(lost) > SHOWN:
        named.append(f"and {len(lost) - SHOWN} more ranges")
    return Skipped(
        True,
        f"its batch skipped {offsets} offsets the publisher says the broker deleted before "
        f"they were read (retention): {'; '.join(named)}",
    )


def with_skipped(check: Check, manifest: dict[str, Any]) -> Check:
    """``check`` (passed) with what ``manifest``'s batch says it skipped beside its detail, or
    failed with why that declaration is malformed; as it was otherwise."""
    skipped = skipped_offsets(manifest)
    if skipped is None or not check.ok:
        return check
    detail = f"{check.detail}; {skipped.detail}" if skipped.ok else skipped.detail
    return Check(check.name, skipped.ok, detail)


def _is_range(value: Any) -> bool:
    if not isinstance(value, dict) or set(value) != {"topic", "partition", "start", "end"}:
        return False
    numbers = (value["partition"], value["start"], value["end"])
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return False
    return (
        isinstance(value["topic"], str)
        and _TOPIC.fullmatch(value["topic"]) is not None
        and 0 <= value["partition"] < 2**31
        and 0 <= value["start"] < value["end"] <= _MAX_OFFSET
    )
