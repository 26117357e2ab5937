"""Background processes owned by the project: started detached, tracked by pid files.

Each runs in its own session, so its pid is also its process group's id: stopping it signals
the whole group, and nothing it started (a launcher's child, a helper) outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from infra.tools import wait_until

# The services this process started and has not stopped: kept so that their ``Popen`` is not
# collected while they run (it would warn "subprocess … is still running"); ``stop`` lets go.
_started: dict[int, subprocess.Popen] = {}


def spawn(cmd: list[str], log_path: Path, pid_path: Path, env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` in its own session with output to ``log_path``; record its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI that started it; stopped by pid
            env={**os.environ, **(env or {})},
        )
    pid_path.write_text(f"{proc.pid}\n")
    _started[proc.pid] = proc
    return proc.pid


def _forget(pid: int) -> None:
    """Let go of an ended service's ``Popen``, told it ended (reaped here or by ``reap``)."""
    started = _started.pop(pid, None)
    if started is not None:
        started.poll()


def read_pid(pid_path: Path) -> int | None:
    try:
        return int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def resident_bytes(pid: int) -> int:
    """The process's resident set now (Linux ``/proc/<pid>/statm``); 0 once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _is_zombie(pid: int) -> bool:
    # A child we started but have not reaped still answers kill(0); reap it if we can.
    with contextlib.suppress(ChildProcessError, OSError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            zombie = stat.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False
    if zombie:  # it exited between the waitpid above and the read: reap it now if it is ours
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    return zombie


def stop(pid_path: Path, grace: float = 5.0) -> bool:
    """SIGTERM the recorded process and its group, SIGKILL what is left after ``grace``
    seconds; True if the process was running."""
    pid = read_pid(pid_path)
    was_alive = pid is not None and (alive(pid) or group_alive(pid))
    if pid is not None and was_alive:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while (alive(pid) or group_alive(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid) or group_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while (alive(pid) or group_alive(pid)) and time.monotonic() < deadline + grace:
                time.sleep(0.05)
        if not alive(pid):
            reap(pid, grace)
    if pid is not None and not alive(pid):
        _forget(pid)
    pid_path.unlink(missing_ok=True)
    return was_alive


def reap(pid: int, within_s: float) -> bool:
    """Wait, at most ``within_s``, for this process's child ``pid`` to exit and collect it;
    whether it is gone (True too when it is not a child of this process, or was collected).
    A multi-threaded process (anvil) shows as a zombie once its main thread has exited, but can
    be reaped only after its other threads: until then ``waitpid`` says it is still running (a
    CI run saw it left a zombie)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            reaped, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours, or reaped already
            return True
        if reaped == pid:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def group_members(group: int) -> list[int]:
    """Live processes (not zombies) whose process group is ``group``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


def group_alive(group: int) -> bool:
    return bool(group_members(group))


def _signal_group(pid: int, signum: int) -> None:
    """Signal ``pid``'s process group if it leads one (``spawn`` makes it so), else ``pid``."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
            return
    except ProcessLookupError:
        # The leader is gone (or a zombie's group is left): signal the members still there.
        for member in group_members(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signum)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def start_service(
    name: str,
    cmd: list[str],
    state_dir: Path,
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``cmd`` as ``name`` (pid and log files in ``state_dir``) and wait until ``ready``.

    Refuses to start a second one; stops the process again if it never becomes ready.
    """
    pid_path, log_path = service_paths(state_dir, name)
    if alive(read_pid(pid_path)):
        raise RuntimeError(f"{name} is already running (pid file {pid_path}); stop it first")
    pid = spawn(cmd, log_path=log_path, pid_path=pid_path, env=env)
    try:
        wait_until(lambda: not alive(pid) or ready(), timeout=timeout, what=what)
    except TimeoutError:
        stop(pid_path)
        raise
    if not alive(pid):
        _forget(pid)
        pid_path.unlink(missing_ok=True)
        raise RuntimeError(f"{name} exited at start; see {log_path}")
    return pid


def stop_service(state_dir: Path, name: str) -> bool:
    """Stop the service ``name`` recorded in ``state_dir``; True if one was running."""
    return stop(service_paths(state_dir, name)[0])


def service_pid(state_dir: Path, name: str) -> int | None:
    pid = read_pid(service_paths(state_dir, name)[0])
    return pid if alive(pid) else None


def service_paths(state_dir: Path, name: str) -> tuple[Path, Path]:
    return state_dir / f"{name}.pid", state_dir / f"{name}.log"
