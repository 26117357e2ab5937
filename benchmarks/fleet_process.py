"""A fleet that produces at its event times from a process of its own, as a deployed fleet does.

Run as a thread of the benchmark's process, the fleet's generator and kafka-python's sender
thread (~3.4 CPU-s over 30 s of 235 nodes, in bursts at every half-second tick) took the GIL
from the driver's thread, which waits for it after every file write, Kafka call and pipe read:
the latency benches measured that interference along with the pipeline.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection

from simulator.fleet import generate
from simulator.producer import at_event_time, produce

START_AFTER_S = 0.5  # the first event time, after the fleet's process has generated its start


class FleetProcess:
    """``nodes`` nodes reporting at 2 Hz for ``seconds`` (seed 11; subscriber sessions with
    ``sessions``) into ``topic``, each record sent at its event time, from a spawned process."""

    def __init__(
        self, bootstrap: str, topic: str, nodes: int, seconds: float, sessions: bool = False
    ) -> None:
        spawn = multiprocessing.get_context("spawn")  # nothing of this process's state or locks
        self._results, sender = spawn.Pipe(duplex=False)
        self._process = spawn.Process(
            target=_send_fleet,
            args=(bootstrap, topic, nodes, seconds, sessions, sender),
            name="rda-bench-fleet",
        )
        self._process.start()
        sender.close()  # the child's end: an EOF here once the child is gone

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def result(self) -> tuple[int, float]:
        """Wait for the fleet to end: (messages sent, seconds it took); a failed fleet is a
        clear error, not an ``EOFError`` from its pipe."""
        self._process.join()
        if self._process.exitcode != 0 or not self._results.poll():
            raise RuntimeError(f"the fleet's process failed (exit code {self._process.exitcode})")
        return self._results.recv()


def _send_fleet(
    bootstrap: str, topic: str, nodes: int, seconds: float, sessions: bool, report: Connection
) -> None:
    start_ms = int((time.time() + START_AFTER_S) * 1000)
    messages = generate(nodes, seconds, 2.0, start_ms, 11, sessions=sessions)
    sent = produce(bootstrap, topic, messages, pace=at_event_time)
    report.send((sent.messages, sent.seconds))
    report.close()
