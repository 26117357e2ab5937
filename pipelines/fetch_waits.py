"""How long a bounded read lets the broker hold its fetches (``fetch.wait.max.ms``).

A bounded read asks only for records that are there, but Tansu holds a fetch at a partition's
end for the whole wait (the last 250 records of a partition: 13-15 ms at 10 ms, 105 ms at
100 ms; librdkafka's 500 ms default made each chunk read wait 0.5 s). And Tansu answers a fetch
whose storage read outlasts the wait with no records, every time: at 1 ms, a broker on
S3-compatible storage never gave a record (15 s; a plain consumer at 10 ms had them in 10 ms),
nor, once, an in-memory one on two busy cores (10 minutes). So a read that gets nothing while
its range still holds records asks again with the next, longer wait.

A longer wait is not kept for good: one slow answer (a busy moment on a healthy broker) would
make every later read at a partition's end wait longer for the rest of the run (~50 against
~13 ms a read, several reads a batch). After ``shorter_after`` whole reads at a longer wait the
shorter one is tried again; if it gets nothing at once, the broker is slow for good, and the
longer wait is kept twice as long before the next try (up to ``MOST_READS_BEFORE_SHORTER``):
a slow broker pays one empty consume per ever longer stretch of reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FETCH_WAITS_MS = (10, 50, 250, 500)  # shortest first
SHORTER_AGAIN_AFTER = 100  # whole reads at a longer wait before the shorter one is tried again
MOST_READS_BEFORE_SHORTER = 12_800  # 100 doubled 7 times: a try per ~13k reads at the most


@dataclass
class FetchWaits:
    """The wait a reader asks with now, and when it asks with a longer or a shorter one."""

    waits_ms: tuple[int, ...] = FETCH_WAITS_MS
    shorter_after: int = SHORTER_AGAIN_AFTER
    level: int = field(default=0, init=False)  # index of the wait in use
    reads: int = field(default=0, init=False)  # whole reads at this level since it was taken
    _patience: dict[int, int] = field(default_factory=dict, init=False)  # level -> reads
    _tried_from: int | None = field(default=None, init=False)  # the level just left

    def __post_init__(self) -> None:
        if not self.waits_ms or list(self.waits_ms) != sorted(self.waits_ms):
            raise ValueError(f"fetch waits must be given shortest first, not {self.waits_ms}")
        if self.shorter_after < 1:
            raise ValueError("a shorter wait is tried again after at least one read")

    @property
    def current_ms(self) -> int:
        return self.waits_ms[self.level]

    def can_wait_longer(self) -> bool:
        return self.level + 1 < len(self.waits_ms)

    def longer(self) -> int:
        """The wait after this one, in use from now on (a read got nothing with this one)."""
        if not self.can_wait_longer():
            raise ValueError(f"{self.current_ms} ms is the longest fetch wait")
        failed_at_once = self._tried_from == self.level + 1 and self.reads == 0
        if failed_at_once:  # the shorter wait, tried again, still gets nothing: try it later
            patience = self._patience.get(self.level + 1, self.shorter_after) * 2
            self._patience[self.level + 1] = min(patience, MOST_READS_BEFORE_SHORTER)
        self._tried_from = None
        self.level += 1
        self.reads = 0
        return self.current_ms

    def read_done(self) -> bool:
        """Count a whole read at the wait in use; True when the next read should ask with the
        shorter wait again (now ``current_ms``)."""
        self.reads += 1
        if self._tried_from is not None:  # the shorter wait, tried again, works: as at first
            self._patience.pop(self._tried_from, None)
            self._tried_from = None
        if self.level == 0 or self.reads < self._patience.get(self.level, self.shorter_after):
            return False
        self._tried_from = self.level
        self.level -= 1
        self.reads = 0
        return True
