"""A child that forks the landing children: each one a copy of the run as it started.

``rda run`` forks its landing child first, while it is one thread with no Kafka client
(``RunLoop._landing``). A *replacement* child — after a crash, or once the child has grown past
its memory bound — used to be forked from the run as it is then: its lag watcher, heartbeat,
metrics server and group membership running, librdkafka's threads among them. A fork copies the
locks those threads hold, not the threads: a lock held at that moment stays held in the child
for good (seen with an import's lock; librdkafka's own state is as exposed), and the child
landed nothing until the stall check killed it.

So the first fork makes a *spawner* instead: a child that does nothing but fork, on request, the
landing children — copies of its own state, which is the run's at its start. Each new child's two
pipes are made by the spawner and their parent ends passed back over a Unix socket
(``SCM_RIGHTS``); its pid is reported, and its wait status on request (only its parent, the
spawner, can collect it). The spawner dies with the run (``PR_SET_PDEATHSIG``) and a landing
child with the spawner, so ``kill -9`` of ``rda run`` still leaves nothing behind; it ignores
SIGINT and SIGTERM (a terminal's Ctrl-C reaches the whole process group: the run decides).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
from collections.abc import Callable, Iterable
from typing import NoReturn

from infra.processes import reap
from streaming.isolation import die_with_parent, fork_frozen

_SPAWN, _STATUS = b"S", b"W"
_REQUEST = struct.Struct("!cq")  # what, pid
_ANSWER = struct.Struct("!q")  # a pid, or a wait status
CLOSE_S = 5.0  # for the spawner to exit once its socket is closed

# Runs in a new child with its request pipe's read end, its answer pipe's write end and the
# spawner's pid (to die with); never returns.
Serve = Callable[[int, int, int], NoReturn]


class SpawnerGone(RuntimeError):
    """The spawner process is not there to fork a child (killed, or never started)."""


class Spawner:
    """A forked child that forks ``serve`` children on request (``spawn``)."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.pid: int | None = None
        self._socket: socket.socket | None = None

    def start(self, close_in_child: Iterable[int] = ()) -> None:
        """Fork the spawner now, unless running; ``close_in_child``: this process's file
        descriptors the spawner and its children must not hold (other landers' pipe ends)."""
        if self.pid is not None:
            return
        parent = os.getpid()
        ours, theirs = socket.socketpair()
        pid = fork_frozen()
        if pid == 0:  # pragma: no cover - the spawner: measured by its children
            ours.close()
            for fd in close_in_child:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _spawn_on_request(theirs, self.serve, parent)
        theirs.close()
        self.pid, self._socket = pid, ours

    def spawn(self) -> tuple[int, int, int]:
        """A new child: its pid, the write end of its requests, the read end of its answers."""
        answer, fds = self._ask(_SPAWN, 0, fds=2)
        if len(fds) != 2:
            raise SpawnerGone("the spawner sent no pipes")
        return answer, fds[0], fds[1]

    def wait_status(self, pid: int) -> int:
        """The wait status of the spawner's child ``pid``, once it has exited (0: not one of
        its children, or already collected)."""
        return self._ask(_STATUS, pid)[0]

    def fileno(self) -> int | None:
        """This process's end of the spawner's socket (another spawner must not inherit it:
        this one would never see its end)."""
        return self._socket.fileno() if self._socket is not None else None

    def close(self) -> None:
        """End the spawner (its children, if any, die with it) and collect it."""
        pid, self.pid = self.pid, None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if pid is not None:
            _collect(pid, CLOSE_S)

    def _ask(self, what: bytes, pid: int, fds: int = 0) -> tuple[int, list[int]]:
        if self._socket is None:
            raise SpawnerGone("the spawner is not running")
        try:
            self._socket.sendall(_REQUEST.pack(what, pid))
            data, received, _flags, _address = socket.recv_fds(self._socket, _ANSWER.size, fds)
        except OSError as error:
            raise SpawnerGone(f"the spawner does not answer: {error}") from error
        if len(data) < _ANSWER.size:
            for fd in received:
                os.close(fd)
            raise SpawnerGone("the spawner is gone")
        return _ANSWER.unpack(data)[0], received


def _spawn_on_request(requests: socket.socket, serve: Serve, parent: int) -> NoReturn:
    """The spawner's loop: a child per spawn request, a wait status per status request, until
    the socket's end (the run closed it, or is gone)."""
    die_with_parent(parent)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    code = 0
    try:
        while True:
            request = _receive_exactly(requests, _REQUEST.size)
            if request is None:
                break
            what, pid = _REQUEST.unpack(request)
            if what == _SPAWN:
                _spawn(requests, serve)
            else:
                requests.sendall(_ANSWER.pack(_status(pid)))
    except BaseException:  # the run sees the end of the socket
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no joining of the run's inherited state


def _spawn(requests: socket.socket, serve: Serve) -> None:
    request_read, request_write = os.pipe()
    answer_read, answer_write = os.pipe()
    spawner = os.getpid()
    pid = fork_frozen()
    if pid == 0:  # pragma: no cover - the landing child
        requests.close()
        os.close(request_write)
        os.close(answer_read)
        serve(request_read, answer_write, spawner)
    os.close(request_read)
    os.close(answer_write)
    try:
        socket.send_fds(requests, [_ANSWER.pack(pid)], [request_write, answer_read])
    finally:
        os.close(request_write)  # the run has its own copies now
        os.close(answer_read)


def _collect(pid: int, within_s: float) -> None:
    """Reap the spawner, which exits at the end of its socket; killed if it has not within
    ``within_s`` (a copy of the socket left in some other process would keep it waiting)."""
    if not reap(pid, within_s):
        os.kill(pid, signal.SIGKILL)
        reap(pid, within_s)


def _status(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _receive_exactly(source: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = source.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
