"""The quality worker's process with its jobs gated, for tests of when and how they start.

``python quality_gate.py GATES DATA_DIR HELD``: runs ``streaming.quality_worker.main`` on
``DATA_DIR``; each job, in its child, first writes ``GATES/<job name>.started`` (JSON: ``warm``,
whether GE was imported already), and a job of dataset ``HELD`` then waits (at most 120 s) for
``GATES/release`` before GE runs; once done, ``GATES/<job name>.imported`` lists the modules the
job imported (JSON).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from streaming import quality_pool, quality_worker

RELEASE_WITHIN_S = 120.0


def _gated(gates: Path, held: str):
    attest = quality_pool._attest_or_set_aside

    def gated(layout, job: Path, docs: bool) -> None:
        # Whether the child found GE imported: forked from a warm worker, or paying it again.
        warm = "great_expectations" in sys.modules
        (gates / f"{job.name}.started").write_text(json.dumps({"warm": warm}))
        if job.name.startswith(held + "."):
            deadline = time.monotonic() + RELEASE_WITHIN_S
            while not (gates / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        before = set(sys.modules)
        attest(layout, job, docs)
        imported = sorted(set(sys.modules) - before)
        (gates / f"{job.name}.imported").write_text(json.dumps(imported))

    return gated


if __name__ == "__main__":
    gates, data_dir, held = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    quality_pool._attest_or_set_aside = _gated(gates, held)
    raise SystemExit(quality_worker.main([data_dir]))
