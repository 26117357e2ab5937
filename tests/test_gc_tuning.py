"""``rda`` processes collect their youngest generation less often (``infra/gc_tuning.py``)."""

from __future__ import annotations

import gc
import subprocess
import sys

from infra.gc_tuning import YOUNG_THRESHOLD, collect_less_often


def test_only_the_youngest_generation_s_threshold_is_raised():
    before = gc.get_threshold()
    try:
        collect_less_often()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def test_the_rda_command_runs_with_the_raised_threshold():
    # `rda` reports nothing of its GC: a command that prints the threshold after `entry`'s start
    code = (
        "import gc, sys; import cli.main as m; m.main = lambda: print(gc.get_threshold()[0]) or 0;"
        " sys.argv = ['rda']; m.entry()"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == str(YOUNG_THRESHOLD), shown.stderr
