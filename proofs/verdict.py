"""Verdicts that mean what they say: VERIFIED, NOT VERIFIED or INCOMPLETE.

A verdict is a list of named checks, each passed (``ok`` True), failed (False) or not checked
(None, with the reason in ``detail``). The outcome:

- NOT VERIFIED when any check failed (``first_failure`` names it);
- INCOMPLETE when nothing failed but a check could not be made (offline, no chain, no pinned
  publisher identity, a version-1 registry…) or a check the verdict requires is missing;
- VERIFIED only when every required check ran and passed: every link up to an anchor on the
  pinned registry. A missing anchor is never VERIFIED.

Exit codes of ``rda verify``: 0 VERIFIED, 1 NOT VERIFIED, 3 INCOMPLETE (2 is a usage error).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

VERIFIED, NOT_VERIFIED, INCOMPLETE = "VERIFIED", "NOT VERIFIED", "INCOMPLETE"
EXIT_CODES = {VERIFIED: 0, NOT_VERIFIED: 1, INCOMPLETE: 3}
# The checks without which a verdict cannot be VERIFIED, by what is verified.
BUNDLE_CHECKS = ("bundle", "leaf", "inclusion", "identity", "anchor")
CHECKPOINT_CHECKS = ("files", "root", "manifest", "signature", "identity", "anchor")
HISTORY_CHECKS = ("previous", "consistency", "anchored", "latest", "links")


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not checked (and why is in detail)
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Verdict:
    dataset: str
    tree_size: int
    root: str
    checks: list[Check] = field(default_factory=list)
    log: str | None = None  # the Merkle log checked, when not the dataset's own
    required: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if any(check.ok is False for check in self.checks):
            return NOT_VERIFIED
        if self.unchecked or self.missing:
            return INCOMPLETE
        return VERIFIED

    @property
    def ok(self) -> bool:
        """True only for VERIFIED."""
        return self.status == VERIFIED

    @property
    def first_failure(self) -> Check | None:
        return next((check for check in self.checks if check.ok is False), None)

    @property
    def unchecked(self) -> list[Check]:
        return [check for check in self.checks if check.ok is None]

    @property
    def missing(self) -> list[str]:
        """Required checks that are not in the verdict at all (an earlier one stopped it)."""
        present = {check.name for check in self.checks}
        return [name for name in self.required if name not in present]

    def as_dict(self) -> dict[str, Any]:
        failure = self.first_failure
        return {
            "dataset": self.dataset,
            "log": self.log or self.dataset,
            "tree_size": self.tree_size,
            "root": self.root,
            "verdict": self.status,
            "verified": self.ok,
            "first_failure": failure.as_dict() if failure else None,
            "not_checked": [check.as_dict() for check in self.unchecked]
            + [{"check": name, "ok": None, "detail": "not reached"} for name in self.missing],
            "checks": [check.as_dict() for check in self.checks],
        }


def overall(statuses: Iterable[str]) -> str:
    """The verdict on several things: NOT VERIFIED if any is, else INCOMPLETE if any is."""
    seen = set(statuses)
    if NOT_VERIFIED in seen:
        return NOT_VERIFIED
    if INCOMPLETE in seen or not seen:
        return INCOMPLETE
    return VERIFIED


def summarized(checks: list[Check], names: Iterable[str]) -> list[Check]:
    """One check per name: its first failure, else its first unchecked, else all passed."""
    result = []
    for name in names:
        same = [check for check in checks if check.name == name]
        if not same:
            continue
        failed = next((c for c in same if c.ok is False), None)
        unchecked = next((c for c in same if c.ok is None), None)
        if failed or unchecked:
            result.append(failed or unchecked)
        elif len(same) == 1:
            result.append(same[0])
        else:
            result.append(Check(name, True, f"{len(same)} checks passed; last: {same[-1].detail}"))
    return result
