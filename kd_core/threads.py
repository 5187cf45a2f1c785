"""How many torch threads the language models run with (one, restored for the image jobs afterwards), and how
many of them train side by side."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

LM_THREADS = 1  # these models are tiny: one torch thread beats two (measured 2-10x faster on a 2-core machine)
MAX_STUDENT_WORKERS = 4  # beyond this Python's GIL (each step's Python code) eats the gain

_threads_lock = threading.Lock()
_threads_state = {"depth": 0, "before": 1}


@contextmanager
def torch_threads(n: int = LM_THREADS) -> Iterator[None]:
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
