"""The peers bench's CPU by process role (``benchmarks/process_cpu.py``), on a real process tree:
a run, a child it forks (landing), a quality worker it starts and a job that worker forks."""

from __future__ import annotations

import sys

from child_processes import spawn

from benchmarks.process_cpu import ROLES, TreeCpu

TREE = """
import os, subprocess, sys, time

def busy(seconds):  # CPU seconds, however loaded the machine is; then idle a while, so that
    end = time.process_time() + seconds  # the sampler sees them all before the process ends
    while time.process_time() < end:
        pass
    time.sleep(0.3)

def fork_busy():  # this process and a child it forks, 0.4 CPU-s each
    pid = os.fork()
    if pid == 0:
        busy(0.4)
        os._exit(0)
    busy(0.4)
    os.waitpid(pid, 0)

if sys.argv[1:] == ["streaming.quality_worker"]:
    fork_busy()  # the quality worker, and a GE job it forks
else:
    worker = subprocess.Popen([sys.executable, __file__, "streaming.quality_worker"])
    fork_busy()  # the run, and a landing child
    worker.wait()
"""


def test_each_process_s_cpu_is_counted_under_its_role(tmp_path):
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    process = spawn([sys.executable, str(script)])
    sampled = TreeCpu(process.pid).start()
    process.wait(timeout=60)
    by_role = sampled.stop()
    assert list(by_role) == list(ROLES)
    # 0.4 CPU-s each, and a start for the two interpreters.
    assert all(0.3 <= by_role[role] <= 0.6 for role in ROLES), by_role
