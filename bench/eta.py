"""ETA benchmark: are the times the app shows for a run right? Prints JSON.

Run with `.venv/bin/python bench/eta.py [--skip NAME ...] [--cache DIR]` on a quiet machine. Five runs, in this
order, through a job runner made as the app makes its own (ui.lifecycle.get_runner: one worker, its jobs in a child
process on every core below this process's priority, this process's torch on one thread) in a fresh cache folder,
the run buttons' estimates measured with the job's thread count as ui.state does: the classroom demo cold (teacher
included), Distill with 3 seeds (its teacher now cached), the data-budget experiment, the Fashion-MNIST teacher (the
Teacher page on Fashion-MNIST; needs Debian's dataset-fashion-mnist or a data folder) and the character-level
language models.

For each: the run button's estimate where the app shows one (the comparisons: kd_core.estimate), the actual
time, and the progress panel's ETA as a session that watched from the start would have read it: polled like
the panel (every second), from its first look once the work has begun (kd_core.estimate.eta_seconds), against
the time that was really left. The issue's bar: every ETA shown for a run of 20 s or more within +-30 %.
Reported per run: the ETA's error at a quarter, half and three quarters of the run, and the worst error over
every poll from 10 % of the run on with at least 5 s left (before that, the panel says "estimating time
left..." or has seen too little to be fair to).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402

POLL_SECONDS = 1.0   # ui.lifecycle.POLL_SECONDS: how often the progress panel looks
RUNS = ("demo", "distill-3-seeds", "data-budget", "fashion-teacher", "language-models")


def make_run(name: str, threads: int) -> tuple[Any, float | None]:
    """(the Task the app submits for run `name`, the run button's estimate in seconds or None where none is shown),
    the estimate measured with `threads` torch threads (the job's)."""
    from kd_core import estimate, lab, lm
    from kd_core.config import preset
    from kd_core.data import load_dataset
    from kd_core.experiment import comparison_task, teacher_task
    from kd_core.threads import torch_threads

    classroom = preset("classroom")
    if name in ("demo", "distill-3-seeds"):
        cfg = classroom if name == "demo" else classroom.replace(seeds=3)
        dataset = load_dataset(cfg.dataset)
        with torch_threads(threads):
            return comparison_task(cfg, dataset), estimate.estimate_seconds(cfg, dataset)
    if name == "data-budget":
        cfg = lab.default_config("data-budget")
        return lab.task("data-budget", cfg, load_dataset(cfg.dataset), lab.parameters("data-budget")), None
    if name == "fashion-teacher":
        cfg = classroom.replace(dataset="fashion-mnist")
        dataset = load_dataset(cfg.dataset)
        with torch_threads(threads):
            return teacher_task(cfg, dataset), estimate.teacher_seconds(cfg, dataset)
    if name == "language-models":
        return lm.task(lm.LMConfig()), None
    raise ValueError(f"unknown run {name!r}; choose from {RUNS}")


def error_at(polls: list[tuple[float, float | None]], end: float, at: float) -> float | None:
    """The ETA's relative error at the first poll from clock time `at` on (None where the panel said none)."""
    for now, eta in polls:
        if now >= at:
            return None if eta is None or end - now <= 0 else round(eta / (end - now) - 1, 3)
    return None


def watch(runner: Any, task: Any, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Submit `task`, poll its progress like the panel does, and say how its ETAs compared with the truth."""
    from kd_core.estimate import eta_seconds

    start = clock()
    job = runner.submit_task(task)
    first: tuple[float, float] | None = None
    polls: list[tuple[float, float | None]] = []   # (clock, ETA said then or None)
    while not job.wait(POLL_SECONDS):
        latest = job.latest
        if latest is None:
            continue
        now = clock()
        if latest.overall <= 0:   # the panel says "estimating time left..." until the work has begun
            polls.append((now, None))
            continue
        first = first or (now, latest.overall)  # a session that watched from the submit on: its first look
        polls.append((now, eta_seconds(first, now, latest.overall)))
    end = clock()
    if job.status != "done":
        raise RuntimeError(f"{task.label}: {job.status} ({job.error})")
    seconds = end - start
    fair = [(now, eta) for now, eta in polls if now - start >= 0.1 * seconds and end - now >= 5]
    errors = [eta / (end - now) - 1 for now, eta in fair if eta is not None]
    return {"label": task.label, "seconds": round(seconds, 1), "polls": len(polls),
            "eta_error_at": {share: error_at(polls, end, start + share * seconds) for share in (0.25, 0.5, 0.75)},
            "eta_worst_error_from_10pct": round(max(errors, key=abs), 3) if errors else None,
            "eta_within_30pct_share": round(sum(abs(e) <= 0.3 for e in errors) / len(errors), 3) if errors else None}


def main() -> int:
    """Run the five (or the chosen) runs one after another and print what their estimates and ETAs said."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=RUNS, help="runs to leave out")
    parser.add_argument("--cache", type=Path, help="cache folder (default: a fresh temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kd-eta-") as tmp:
        os.environ["KD_LAB_CACHE_DIR"] = str(args.cache or tmp)
        from kd_core.data import DatasetError
        from kd_core.jobs import JobRunner

        runner = JobRunner(workers=1, reserved_cores=1, isolated=True, start_now=True)  # as get_runner makes the app's
        report: dict[str, Any] = {"machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
                                              "torch_threads_per_job": runner.threads_per_job}, "runs": {}}
        for name in RUNS:
            if name in args.skip:
                continue
            try:
                task, button = make_run(name, runner.threads_per_job)
            except DatasetError as exc:
                report["runs"][name] = {"skipped": str(exc)}
                continue
            result = watch(runner, task)
            if button is not None:
                result["button_estimate_seconds"] = round(button, 1)
                result["button_error"] = round(button / result["seconds"] - 1, 3)
            report["runs"][name] = result
            print(f"{name}: {json.dumps(result)}", file=sys.stderr)
        runner.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
