"""Torch's thread count for a block (restored for the image jobs afterwards), and independent one-thread trainings
side by side: the image experiments' and the language models' students.

Tiny models gain little from a second torch thread (an image student's 390 steps: the same time on 1 thread as on
2), so a job that has two cores and several students trains them two at a time, one thread each, in Python
threads (bench/side_by_side.py measures it). Each student's numbers depend on its one thread only, not on how
many train beside it.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

import torch

from kd_core.train import TrainingCancelled

STUDENT_THREADS = 1  # torch threads of a student trained beside others, and of the character-level language models
# (tiny: one torch thread beats two, measured 2-10x faster on a 2-core machine)
MAX_STUDENT_WORKERS = 4  # beyond this Python's GIL (each step's Python code) eats the gain

_threads_lock = threading.Lock()
_threads_state = {"depth": 0, "before": 1}
T = TypeVar("T")


@contextmanager
def torch_threads(n: int = STUDENT_THREADS) -> Iterator[None]:
    """Run the block with `n` torch threads; the count from before the outermost block (in any thread: a job and
    a page may overlap) is restored when the last block ends, so the image jobs keep theirs."""
    with _threads_lock:
        if _threads_state["depth"] == 0:
            _threads_state["before"] = torch.get_num_threads()
        _threads_state["depth"] += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_state["depth"] -= 1
            if _threads_state["depth"] == 0:
                torch.set_num_threads(_threads_state["before"])


def student_workers(students: int, cores: int | None = None) -> int:
    """How many independent one-thread students train at once: one per core the job may use (`cores`; default the
    torch thread count the job started with: both cores from the CLI, one in the app, whose job runner keeps the
    other for drawing pages), at most MAX_STUDENT_WORKERS and `students`. Each student's numbers do not depend on it."""
    cores = torch.get_num_threads() if cores is None else cores
    return max(1, min(cores, MAX_STUDENT_WORKERS, students))


def side_by_side(jobs: Sequence[Callable[[Callable[[], bool]], T]], workers: int,
                 should_stop: Callable[[], bool] | None = None,
                 on_done: Callable[[int, T], None] | None = None) -> list[T]:
    """Every job(stopped) with `workers` at a time, one torch thread each; their results in job order.

    A job checks `stopped()` at each step: it turns true when the user stops (`should_stop`) or another job
    failed, so one failure stops the rest and is raised itself (not the stops it caused). `on_done(i, result)`
    runs in the calling thread as each job finishes, while the others still train.
    """
    failed = threading.Event()

    def stopped() -> bool:
        return failed.is_set() or (should_stop is not None and should_stop())

    def guarded(job: Callable[[Callable[[], bool]], T]) -> T:
        try:
            return job(stopped)
        except BaseException:
            failed.set()
            raise

    results: list[T] = [None] * len(jobs)  # type: ignore[list-item]
    errors: list[BaseException] = []
    with torch_threads(), ThreadPoolExecutor(max(1, workers), thread_name_prefix="kd-student") as pool:
        pending = {pool.submit(guarded, job): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                if future.exception() is not None:
                    errors.append(future.exception())
                    continue
                results[i] = future.result()
                if on_done is not None and not failed.is_set():
                    try:
                        on_done(i, results[i])
                    except BaseException as exc:  # e.g. a full disk while the others train: they stop too
                        failed.set()
                        errors.append(exc)
    if errors:
        raise next((e for e in errors if not isinstance(e, TrainingCancelled)), errors[0])
    return results
