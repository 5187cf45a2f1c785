"""A job's work in a child process of its own, so training never shares the server's GIL with the pages.

A training thread inside the server process takes the GIL for the Python part of every torch op, and the
pages' threads wait for it (bench/gil.py: a pure-Python thread beside training makes each 72x slower; the whole
server, pages and training, stayed under one core at 100 sessions). Here the parent sends the work (cloudpickle:
closures and the data they hold travel by value), its environment and its torch thread count over a socket pair;
the child runs it and sends back every progress Event, the cache writes that failed, and how it ended. Stop is a
message that the work's `should_stop` sees at its next step. A child that dies (killed, out of memory) fails its
job with a message saying so, and the next job starts a new child; a child whose server went away stops its work
at the next step and exits. `python -m kd_core.worker FD` is the child.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

POLL_SECONDS = 0.1  # how often the parent looks at Stop while the child is silent
NICENESS = 10  # the child's scheduling priority below the server's: a page's rerun gets a core before training does


def cores_per_worker(workers: int = 1, reserved_cores: int = 0) -> int:
    """An equal share of this process's cores, less `reserved_cores`, per concurrent worker (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, (cores - reserved_cores) // max(1, workers))


class WorkFailed(Exception):
    """The work raised in the child (the message is its "Type: message"), or the child itself died."""


class WorkerProcess:
    """One child Python process that runs jobs' work one at a time, for one worker thread of the job runner."""

    def __init__(self, threads: int) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # what this process imports
        self._proc = subprocess.Popen([sys.executable, "-m", "kd_core.worker", str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(ours.detach())
        self.threads = threads

    @property
    def alive(self) -> bool:
        """Whether the child is still running."""
        return self._proc.poll() is None

    def run(self, work: Callable[[Callable[[Any], None], Callable[[], bool]], Any], report: Callable[[Any], None],
            should_stop: Callable[[], bool], failures: list[str]) -> Any:
        """Run `work(report, should_stop)` in the child and return its result; the reasons of its failed cache writes
        go to `failures`. Raises TrainingCancelled when it stopped on request, WorkFailed when it raised or died."""
        from kd_core.train import TrainingCancelled

        import cloudpickle

        try:
            self._conn.send(("job", cloudpickle.dumps(work), dict(os.environ), self.threads))
            stop_sent = False
            while True:
                if not stop_sent and should_stop():
                    self._conn.send(("stop",))
                    stop_sent = True
                if not self._conn.poll(POLL_SECONDS):
                    continue
                message = self._conn.recv()
                if message[0] == "event":
                    report(message[1])
                    continue
                _, status, value, child_failures = message
                failures.extend(child_failures)
                if status == "done":
                    return value
                if status == "cancelled":
                    raise TrainingCancelled()
                raise WorkFailed(value)
        except (EOFError, OSError) as exc:
            try:
                code = self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # alive, but its socket broke: it is of no further use
                self._proc.kill()
                code = self._proc.wait()
            raise WorkFailed(f"the training process ended unexpectedly (exit code {code}; killed, or out of "
                             f"memory?): {type(exc).__name__}") from exc

    def close(self) -> None:
        """Ask the child to exit and wait for it (killed after 10 s)."""
        try:
            self._conn.send(("exit",))
        except OSError:
            pass
        self._conn.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def serve(conn: Connection) -> None:
    """The child's loop: run each job sent on `conn`, one at a time, until told to exit or the parent goes away."""
    if hasattr(os, "nice"):  # POSIX only
        os.nice(NICENESS)
    import torch

    from kd_core import store
    from kd_core.train import TrainingCancelled

    conn_lock, stop = threading.Lock(), threading.Event()  # one user of the socket at a time
    gone = threading.Event()  # the parent closed its end: stop the work and exit

    def send(message: tuple) -> None:
        with conn_lock:
            conn.send(message)

    def should_stop() -> bool:
        with conn_lock:  # students may train in threads
            try:
                while not stop.is_set() and conn.poll():
                    if conn.recv()[0] in ("stop", "exit"):
                        stop.set()
            except (EOFError, OSError):
                gone.set()
                stop.set()
        return stop.is_set()

    while not gone.is_set():
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "exit":
            return
        if message[0] != "job":
            continue  # a Stop that arrived after its job had ended
        _, payload, env, threads = message
        os.environ.clear()
        os.environ.update(env)
        torch.set_num_threads(threads)
        stop.clear()
        with store.recording_write_failures() as failures:
            try:
                ended: tuple = ("done", pickle.loads(payload)(lambda event: send(("event", event)), should_stop))
            except TrainingCancelled:
                ended = ("cancelled", None)
            except Exception as exc:  # reported to the parent as a message
                traceback.print_exc()
                ended = ("failed", f"{type(exc).__name__}: {exc}")
        try:
            send(("end", *ended, list(failures)))
        except (EOFError, OSError):
            return
        except Exception as exc:  # a result that does not pickle
            send(("end", "failed", f"its result could not be sent back: {type(exc).__name__}: {exc}", list(failures)))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
