"""bf16 autocast against fp32: accuracy over 3 teacher seeds (3 student seeds each) and seconds, per preset. JSON.

Each (preset, teacher seed) is trained in fp32 and in bf16 one after the other, in a fresh cache folder, with the
whole run's settings equal otherwise; the figures answer whether "auto" (bf16 where the CPU has it natively) may be
the default: its accuracy must stay within seed noise of fp32's.

  .venv/bin/python bench/precision.py          # classroom (MNIST sample), keras (Fashion-MNIST, 6,000, 1 epoch)
  .venv/bin/python bench/precision.py --smoke  # seconds: 1 teacher seed, tiny runs
Run it on a quiet machine; on a CPU without native bf16, bf16 autocast is emulated and slow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRECISIONS = ("fp32", "bf16")


def cases(smoke: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (preset, config changes) of the runs to compare."""
    if smoke:
        return {"classroom-tiny": ("classroom", {"teacher_epochs": 1, "student_epochs": 2, "teacher_train_limit": 500,
                                                 "student_train_limit": 100, "seeds": 1})}
    return {"classroom": ("classroom", {"seeds": 3}),
            "keras-fashion-6000": ("keras", {"dataset": "fashion-mnist", "teacher_epochs": 1, "student_epochs": 1,
                                             "teacher_train_limit": 6000, "student_train_limit": 6000, "seeds": 3})}


def spread(values: list[float]) -> dict[str, float]:
    """Mean and standard deviation (0 for one value) of `values`, in percent."""
    pct = [100 * v for v in values]
    return {"mean": statistics.fmean(pct), "std": statistics.stdev(pct) if len(pct) > 1 else 0.0}


def main() -> int:
    """Train every case in both precisions for each teacher seed and print accuracies, differences and seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one tiny case, one teacher seed")
    parser.add_argument("--teacher-seeds", type=int, default=3)
    args = parser.parse_args()
    os.environ["KD_LAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="kd-precision-")
    from kd_core.config import native_bf16, preset
    from kd_core.experiment import run_experiment

    teacher_seeds = range(1 if args.smoke else args.teacher_seeds)
    report: dict[str, Any] = {"native_bf16": native_bf16(), "cores": len(os.sched_getaffinity(0)),
                              "load_average_before": os.getloadavg(), "cases": {}}
    for name, (preset_name, changes) in cases(args.smoke).items():
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PRECISIONS}
        for teacher_seed in teacher_seeds:
            for precision in PRECISIONS:
                cfg = preset(preset_name).replace(**changes, teacher_seed=teacher_seed, precision=precision)
                result = run_experiment(cfg)
                runs[precision].append({role: {"accuracies": m["accuracies"], "seconds": m["seconds"]}
                                        for role, m in result["models"].items()})
                print(f"{name} teacher seed {teacher_seed} {precision}: " + ", ".join(
                    f"{role} {100 * statistics.fmean(m['accuracies']):.2f} % in {m['seconds']:.1f} s"
                    for role, m in result["models"].items()), file=sys.stderr, flush=True)
        summary: dict[str, Any] = {}
        for role in runs["fp32"][0]:
            per = {p: [a for run in runs[p] for a in run[role]["accuracies"]] for p in PRECISIONS}
            seconds = {p: sum(run[role]["seconds"] for run in runs[p]) for p in PRECISIONS}
            summary[role] = {**{f"{p}_accuracy_pct": spread(per[p]) for p in PRECISIONS},
                             "bf16_minus_fp32_points":
                                 100 * (statistics.fmean(per["bf16"]) - statistics.fmean(per["fp32"])),
                             **{f"{p}_seconds": seconds[p] for p in PRECISIONS},
                             "bf16_speedup": seconds["fp32"] / max(seconds["bf16"], 1e-9)}
        report["cases"][name] = summary
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
