"""What plain ``rda verify`` checks for each log: its newest checkpoint and its whole history.

One verdict per log: the checkpoint (files → rows → root → manifest → signature → identity →
anchor, ``proofs.verify``) and the history (links, consistency proofs, every anchor, the
registry's ``latest()`` and its chain of anchors, ``proofs.history``), the history's checks
summarized one per kind so that a log of thousands of checkpoints still reads in a few lines.
"""

from __future__ import annotations

from pathlib import Path

from proofs.history import NOT_ANCHORED_YET, verify_history
from proofs.log import LogRef
from proofs.trust import Pin, TrustRoot
from proofs.verdict import CHECKPOINT_CHECKS, HISTORY_CHECKS, Check, Verdict, summarized
from proofs.verify import verify_dataset


def audit_log(
    dataset_dir: Path,
    trust: TrustRoot | None = None,
    manifest_file: Path | None = None,
    log: LogRef | None = None,
) -> Verdict:
    """The checkpoint of ``manifest_file`` (default: the newest) and the history of its log."""
    trust = trust or TrustRoot(Pin())
    verdict = verify_dataset(dataset_dir, manifest_file, trust, log)
    verdict.required = (*(verdict.required or CHECKPOINT_CHECKS), *HISTORY_CHECKS)
    if verdict.tree_size < 0:  # the manifest itself is unusable: nothing more to check
        return verdict
    history = verify_history(dataset_dir, trust, log or LogRef.for_dataset(dataset_dir))
    pending = next(
        (c for c in history.checks if c.name == "latest" and NOT_ANCHORED_YET in c.detail), None
    )
    if pending is not None and history.tree_size == verdict.tree_size:
        verdict.checks = [_pending(c, pending) for c in verdict.checks]
    verdict.checks += summarized(history.checks, HISTORY_CHECKS)
    return verdict


def _pending(check: Check, latest: Check) -> Check:
    """The newest checkpoint, written but not anchored yet: not a failure, not a pass."""
    if check.name == "anchor" and check.ok is False and check.detail.startswith("no anchor"):
        return Check("anchor", None, f"not checked: {latest.detail}")
    return check
