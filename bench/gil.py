"""A training thread beside a busy Python thread, as a server's job beside its page runs: seconds, at switch intervals.

The app trains in a thread of the Streamlit server, which runs every visitor's page script in other threads of
the same interpreter. Torch lets go of the interpreter lock (the GIL) inside every operation and takes it back
after; while another thread runs pure Python, each take-back waits for that thread's switch interval (5 ms by
default, sys.setswitchinterval), and a small student's training step is tens of short operations. This prints,
for each switch interval: a classroom student's training (keras-student, 400 images, --epochs, 1 torch thread)
alone and beside a thread that runs pure Python (the stand-in for page runs), and that thread's speed alone and
beside the training. JSON. (A shorter interval in the server trades the other way: with 1 ms the Chromium
session's p95 under bench/ws_load.py --full was 3.4-4.1 s in three runs against 1.4-5.5 s, median 2.0, at 5 ms;
see issue 15's notes. Training in a process of its own would spare both.)

  .venv/bin/python bench/gil.py                 # switch intervals 5 ms (Python's default), 1 ms, 0.2 ms
  .venv/bin/python bench/gil.py --epochs 5 --intervals 0.005
Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402


def python_work() -> None:
    """One unit of pure-Python work (no torch, never lets go of the GIL on its own)."""
    sum(range(2000))


def units_per_second(seconds: float = 1.0) -> float:
    """How many python_work units this thread does per second, alone."""
    started, units = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        python_work()
        units += 1
    return units / (time.perf_counter() - started)


def beside_python(fn: Callable[[], float]) -> tuple[float, float]:
    """(fn()'s seconds, python_work units per second meanwhile) with a pure-Python thread running beside fn."""
    stop, units = threading.Event(), [0]

    def spin() -> None:
        while not stop.is_set():
            python_work()
            units[0] += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        seconds = fn()
    finally:
        stop.set()
        thread.join()
    return seconds, units[0] / seconds


def main() -> int:
    """Time the student alone and beside the Python thread at each switch interval, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.005, 0.001, 0.0002])
    args = parser.parse_args()
    import torch

    from kd_core.config import resolved_precision
    from kd_core.data import load_dataset
    from kd_core.experiment import balanced_subset
    from kd_core.models import create_model
    from kd_core.train import train

    torch.set_num_threads(1)
    precision = resolved_precision("auto")  # as the app trains on this CPU
    dataset = load_dataset("mnist-sample")
    idx = balanced_subset(dataset.train_y, 400)
    images, labels = dataset.train_x[idx], dataset.train_y[idx]

    def student() -> float:
        model = create_model("keras-student", seed=0)
        started = time.perf_counter()
        train(model, images, labels, epochs=args.epochs, batch_size=32, lr=3e-3, seed=0, precision=precision)
        return time.perf_counter() - started

    student()  # warm-up: first-call costs are not what this measures
    default = sys.getswitchinterval()
    rows: list[dict[str, Any]] = []
    try:
        for interval in args.intervals:
            sys.setswitchinterval(interval)
            alone = min(student() for _ in range(2))
            python_alone = units_per_second()
            beside, python_beside = min((beside_python(student) for _ in range(2)), key=lambda r: r[0])
            rows.append({"switch_interval_s": interval, "student_alone_s": round(alone, 3),
                         "student_beside_python_s": round(beside, 3), "student_slowdown": round(beside / alone, 1),
                         "python_units_per_s_alone": round(python_alone),
                         "python_units_per_s_beside_student": round(python_beside),
                         "python_speed_kept": round(python_beside / python_alone, 2)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        sys.setswitchinterval(default)
    print(json.dumps({"machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
                                  "load_average": os.getloadavg()},
                      "student": {"model": "keras-student", "images": len(idx), "epochs": args.epochs,
                                  "torch_threads": 1, "precision": precision},
                      "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
