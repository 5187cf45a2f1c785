"""Students side by side (one torch thread each) against one after another: seconds, equal numbers, the estimate.

A cold classroom comparison's students (its teacher cached first, so only they train) run three ways, in rounds
that alternate the order: one after another on 2 torch threads (how the command line trained them before),
one after another on 1 thread ("alone"), and two at a time on 1 thread each (kd_core.threads.side_by_side, the
command line's way now when it has 2 cores). Prints the wall seconds of each, the slowdown of a student beside
another against alone (kd_core.estimate.SIDE_BY_SIDE_SLOWDOWN is this figure), whether side by side gives the
one-thread numbers exactly, and the plan's estimate for each. JSON.

  .venv/bin/python bench/side_by_side.py            # classroom preset, 1 seed (2 students), 3 rounds
  .venv/bin/python bench/side_by_side.py --seeds 3 --rounds 2
Run it on a quiet machine with 2 or more cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402

WAYS = {"one after another, 2 threads": (2, 1), "alone, 1 thread": (1, 1), "side by side, 1 thread each": (2, 2)}


def main() -> int:
    """Time the students each way, round after round, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="classroom")
    args = parser.parse_args()
    os.environ["KD_LAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="kd-side-by-side-")
    import torch

    from kd_core.config import preset
    from kd_core.data import load_dataset
    from kd_core.distributed import LocalBackend
    from kd_core.estimate import SIDE_BY_SIDE_SLOWDOWN, comparison_plan
    from kd_core.experiment import get_teacher, run_experiment

    cfg = preset(args.preset).replace(seeds=args.seeds)
    dataset = load_dataset(cfg.dataset)
    get_teacher(cfg, dataset)  # cached: only the students train below
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    accuracies: dict[str, dict[str, list[float]]] = {}
    for round_ in range(args.rounds):
        for way in (list(WAYS) if round_ % 2 == 0 else list(WAYS)[::-1]):
            threads, workers = WAYS[way]
            torch.set_num_threads(threads)
            started = time.perf_counter()
            result = run_experiment(cfg, use_cache=False, backend=LocalBackend(workers=workers))
            seconds[way].append(time.perf_counter() - started)
            accuracies[way] = {role: result["models"][role]["accuracies"] for role in ("distilled", "scratch")}
            print(f"round {round_} {way}: {seconds[way][-1]:.2f} s", file=sys.stderr, flush=True)
    estimates: dict[str, float] = {}
    for way, (threads, workers) in WAYS.items():  # what the plan (the progress weights and the ETA) expects
        torch.set_num_threads(threads)
        estimates[way] = comparison_plan(cfg, dataset, teacher_cached=True, side_by_side=workers).seconds
    median = {way: statistics.median(values) for way, values in seconds.items()}
    alone, beside = median["alone, 1 thread"], median["side by side, 1 thread each"]
    report: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg()},
        "config": {"preset": args.preset, "seeds": args.seeds, "students": 2 * args.seeds},
        "seconds": seconds, "median_seconds": median,
        "speedup_side_by_side_vs_2_threads": median["one after another, 2 threads"] / beside,
        "slowdown_beside_another_vs_alone": beside / (alone / 2),
        "SIDE_BY_SIDE_SLOWDOWN_in_code": SIDE_BY_SIDE_SLOWDOWN,
        "side_by_side_equals_one_thread_alone":
            accuracies["side by side, 1 thread each"] == accuracies["alone, 1 thread"],
        "estimated_seconds": estimates,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
