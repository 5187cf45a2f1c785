"""Benchmark the dark-knowledge lab: each experiment's default configuration on mnist-sample, as JSON.

    KD_LAB_CACHE_DIR=$(mktemp -d) .venv/bin/python bench/lab.py [--only NAME ...]

Use an empty cache folder: otherwise results come from the cache and the seconds mean nothing. The
teacher (shared by every experiment) is trained first and timed on its own; each experiment's
`seconds` then uses the cached teacher, and `seconds_with_teacher` adds the teacher's training time
(the cold-start cost of running that experiment alone). Timings depend on the machine's load, which
is reported (1-minute load average before and after each experiment).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kd_core import lab  # noqa: E402
from kd_core.data import load_dataset  # noqa: E402
from kd_core.experiment import get_teacher  # noqa: E402
from kd_core.train import configure_threads  # noqa: E402


def _load() -> float:
    return os.getloadavg()[0]


def _summary(name: str, r: dict) -> dict:
    """The figures worth reading from one experiment's result."""
    if name == "data-budget":
        rows = [{k: row[k] for k in ("images", "epochs", "distilled_mean", "distilled_std", "scratch_mean",
                                     "scratch_std", "gain", "gain_std", "within_noise")} for row in r["rows"]]
        s = r["summary"]
        return {"rows": rows, "bar_smallest_gain_ge_5_points": s["smallest_gain"] >= 0.05,
                "bar_smallest_gain_gt_full_gain": s["smallest_gain"] > s["largest_gain"]}
    if name == "omitted-class":
        m = r["models"]
        out = {role: {k: m[role][k] for k in ("accuracy_mean", "label_accuracy_mean", "other_accuracy_mean")}
               for role in ("teacher", "scratch", "distilled", "distilled_corrected", "distilled_all")}
        return {"label": r["label"], "student_train_images": r["student_train_images"], "models": out,
                "bias": r["bias"]["chosen"], "other_class_gap_points": 100 * r["other_class_gap"]["corrected"],
                "bar_scratch_label_le_2pct": m["scratch"]["label_accuracy_mean"] <= 0.02,
                "bar_distilled_raw_ge_70pct": m["distilled"]["label_accuracy_mean"] >= 0.70,
                "bar_corrected_ge_92pct": m["distilled_corrected"]["label_accuracy_mean"] >= 0.92,
                "bar_other_classes_within_2_points": abs(r["other_class_gap"]["corrected"]) <= 0.02}
    if name == "sweep":
        return {"scratch_mean": r["scratch"]["mean"], "best": r["best"], "within_noise": r["within_noise"],
                "matrix_rows_alpha_cols_T": r["matrix"], "temperatures": r["temperatures"], "alphas": r["alphas"],
                "trained_students": r["trained_students"]}
    if name == "hints":
        return {"scratch_mean": r["scratch"]["mean"], "matched": r["matched"],
                "rows": [{k: row[k] for k in ("weight", "accuracy_mean", "accuracy_std", "gain_vs_plain_kd",
                                              "within_noise", "hint_distance_first", "hint_distance_last")}
                         for row in r["rows"]]}
    return {"scratch_mean": r["scratch"]["mean"],
            "rows": [{"temperature": row["temperature"],
                      **{f"{k}_{f}": row[k][f] for k in ("with_t2", "without_t2")
                         for f in ("soft_grad_params", "soft_grad_logits", "accuracy_mean")}}
                     for row in r["rows"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=lab.EXPERIMENTS, default=list(lab.EXPERIMENTS))
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: the engine's choice, one per core); on a machine shared with "
                             "other busy processes, 1 avoids stalls in torch's thread pool")
    args = parser.parse_args()
    threads = configure_threads()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
        threads = args.threads
    dataset = load_dataset("mnist-sample")
    report = {"machine": {"cores": len(os.sched_getaffinity(0)), "torch_threads": threads, "command": " ".join(sys.argv),
                          "cache_dir": os.environ.get("KD_LAB_CACHE_DIR", "(default)")}, "experiments": {}}
    start, load = time.perf_counter(), _load()
    _, meta = get_teacher(lab.default_config("sweep"), dataset)
    report["teacher"] = {"seconds": time.perf_counter() - start, "cached": meta["cached"],
                         "accuracy": meta["accuracy"], "load_before": load, "load_after": _load()}
    functions = {"data-budget": lab.data_budget, "omitted-class": lab.omitted_class, "sweep": lab.sweep,
                 "t-squared": lab.t_squared, "hints": lab.hints}
    for name in args.only:
        cfg = lab.default_config(name)
        load, start = _load(), time.perf_counter()
        result = functions[name](cfg)
        seconds = time.perf_counter() - start
        if result.get("cached"):
            print(f"warning: {name} came from the cache; use an empty KD_LAB_CACHE_DIR", file=sys.stderr)
        report["experiments"][name] = {
            "seconds": seconds, "seconds_with_teacher": seconds + (0 if meta["cached"] else report["teacher"]["seconds"]),
            "cached": bool(result.get("cached")), "seeds": cfg.seeds, "load_before": load, "load_after": _load(),
            **_summary(name, result)}
        print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
