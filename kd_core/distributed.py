"""Where a job's independent students train: here (the default), or as Ray tasks.

A job that trains several independent students (the seeds of `run_experiment`, the cells of a lab sweep)
hands them to a backend's `map`. `LocalBackend` trains them in this process with live progress: one after
another on the job's torch threads when it has one core (the app's jobs), side by side on one thread each
when it has more (the command line: kd_core.threads). `RayBackend` runs each as a Ray remote task, on a
single-node Ray started here or on a cluster, and reports one progress event per finished task (its last
snapshot).

Both give the same numbers for the same seeds as long as torch uses the same number of threads
(this project's determinism holds per thread count): a Ray task sets the driver's thread count,
unless KD_LAB_RAY_THREADS says otherwise.

Chosen by environment (see `backend_from_env`): KD_LAB_BACKEND=ray, or KD_LAB_RAY_ADDRESS set
("auto", or "ray://host:10001") unless KD_LAB_BACKEND=local.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch

from kd_core.threads import side_by_side, student_workers
from kd_core.train import Progress, TrainingCancelled

BACKEND_ENV = "KD_LAB_BACKEND"          # "local" (default) or "ray"
RAY_ADDRESS_ENV = "KD_LAB_RAY_ADDRESS"  # a cluster to join; unset: a single-node Ray started in this process
RAY_THREADS_ENV = "KD_LAB_RAY_THREADS"  # torch threads per Ray task; unset: the driver's own count
POLL_SECONDS = 0.2                      # how often the driver checks should_stop while Ray tasks run
log = logging.getLogger("kd_core.distributed")
_CONNECT = threading.Lock()  # Ray's connection is per process, so is this lock: two jobs never both ray.init

# A task function: fn(shared, task, on_progress, should_stop) -> result. It must be defined at module level
# so Ray can send it by name; `shared` (data every task needs) travels to the workers once per map.
TaskFn = Callable[[Any, Any, Callable[[Progress], None] | None, Callable[[], bool] | None], Any]


class Backend(Protocol):
    """Runs independent tasks and returns their results in task order."""

    name: str

    def side_by_side(self, tasks: int) -> int:
        """How many of `tasks` tasks progress at once, as a run's estimate counts them."""
        ...

    def map(self, fn: TaskFn, shared: Any, tasks: Sequence[Any], *,
            watch: Callable[[int], Callable[[Progress], None]] | None = None,
            on_result: Callable[[int, Any], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[Any]:
        """fn(shared, task, ...) per task; watch(i) gives task i's progress callback, on_result(i, result) ends it."""
        ...


@dataclass(frozen=True)
class LocalBackend:
    """Every task in this process, with live progress and cancel at the next training step: one after another
    with the job's torch threads, or `workers` at a time on one thread each (default: one per core of the job,
    kd_core.threads.student_workers)."""

    workers: int | None = None
    name: str = "local"

    def side_by_side(self, tasks: int) -> int:
        """How many of `tasks` tasks train at once."""
        return self.workers or student_workers(tasks)

    def map(self, fn: TaskFn, shared: Any, tasks: Sequence[Any], *,
            watch: Callable[[int], Callable[[Progress], None]] | None = None,
            on_result: Callable[[int, Any], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[Any]:
        """Run the tasks; on_result(i, result) follows each task at once, in this thread."""
        workers = self.side_by_side(len(tasks))
        if workers > 1:
            jobs = [lambda stopped, i=i: fn(shared, tasks[i], watch(i) if watch is not None else None, stopped)
                    for i in range(len(tasks))]
            return side_by_side(jobs, workers, should_stop, on_result)
        results = []
        for i, task in enumerate(tasks):
            result = fn(shared, task, watch(i) if watch is not None else None, should_stop)
            if on_result is not None:
                on_result(i, result)
            results.append(result)
        return results


def _run_task(fn: TaskFn, shared: Any, task: Any, threads: int) -> tuple[Any, Progress | None]:
    """Inside a Ray worker: one task with `threads` torch threads; returns its result and last progress snapshot."""
    torch.set_num_threads(threads)
    snapshots: list[Progress] = []
    return fn(shared, task, snapshots.append, None), (snapshots[-1] if snapshots else None)


def _import_ray() -> Any:
    """The ray module, or a RuntimeError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(f"the Ray backend needs Ray: `.venv/bin/pip install -r requirements-ray.txt` "
                           f"(or unset {BACKEND_ENV} and {RAY_ADDRESS_ENV} to train in this process)") from exc
    return ray


@dataclass(frozen=True)
class RayBackend:
    """Every task as a Ray remote task; one progress event per finished task; Stop cancels what is left."""

    address: str | None = None   # None: join the Ray already started in this process, or start a single-node one
    threads: int | None = None   # torch threads (and Ray CPUs) per task; None: the driver's torch thread count
    name: str = "ray"

    def side_by_side(self, tasks: int) -> int:
        """1: the estimate counts Ray tasks one after another (a cluster's width is not known in advance)."""
        return 1

    def connect(self) -> Any:
        """The ray module, connected: to `address`, or to a single-node Ray started now when none is running.

        On a cluster this process's kd_core travels with the job (Ray's py_modules), so worker nodes need
        the same Python packages (requirements.txt, requirements-ray.txt) but no copy of the code.
        """
        ray = _import_ray()
        with _CONNECT:
            if ray.is_initialized():
                return ray
            if self.address:
                ray.init(address=self.address, runtime_env={"py_modules": [str(Path(__file__).parent)],
                                                            "excludes": ["__pycache__"]})
            else:
                ray.init(address="local", include_dashboard=False)  # a new one, never a stale local cluster
            log.info("Ray connected: %s CPUs in the cluster", ray.cluster_resources().get("CPU"))
        return ray

    def task_threads(self, ray: Any) -> int:
        """Threads per task: the chosen count, capped by the largest node's CPUs so every task can be placed."""
        wanted = self.threads or torch.get_num_threads()
        largest = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=1)
        if wanted > largest:
            log.warning("%d torch threads per task asked, but the largest Ray node has %d CPUs: using %d "
                        "(numbers can then differ from a local run with %d threads)", wanted, largest, largest, wanted)
        return max(1, min(wanted, largest))

    def map(self, fn: TaskFn, shared: Any, tasks: Sequence[Any], *,
            watch: Callable[[int], Callable[[Progress], None]] | None = None,
            on_result: Callable[[int, Any], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[Any]:
        """Submit every task at once, then collect them as they finish (on_result in finishing order)."""
        if not tasks:
            return []
        ray = self.connect()
        threads = self.task_threads(ray)
        shared_ref = ray.put(shared)  # sent to each worker node once, not once per task
        remote = ray.remote(_run_task).options(num_cpus=threads)
        refs = [remote.remote(fn, shared_ref, task, threads) for task in tasks]
        where = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(tasks)
        pending = list(refs)
        try:
            while pending:
                if should_stop is not None and should_stop():
                    raise TrainingCancelled()
                done, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    i = where[ref]
                    results[i], last = ray.get(ref)
                    if watch is not None and last is not None:
                        watch(i)(last)
                    if on_result is not None:
                        on_result(i, results[i])
        finally:
            for ref in pending:  # after Stop or a failed task: nothing left running for nobody
                ray.cancel(ref)
        return results


def backend_from_env() -> Backend:
    """The backend the environment asks for: Ray when KD_LAB_BACKEND=ray or KD_LAB_RAY_ADDRESS is set, else local."""
    choice = os.environ.get(BACKEND_ENV, "").strip().lower()
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip() or None
    choice = choice or ("ray" if address else "local")
    if choice == "local":
        return LocalBackend()
    if choice != "ray":
        raise ValueError(f"{BACKEND_ENV}={choice!r} is not a backend; choose local or ray")
    threads = os.environ.get(RAY_THREADS_ENV, "").strip()
    if threads and not (threads.isdigit() and int(threads) > 0):
        raise ValueError(f"{RAY_THREADS_ENV}={threads!r} must be a whole number of threads above 0")
    return RayBackend(address, int(threads) if threads else None)
