"""Benchmark of issue 5's bar: prints JSON.

- int8 distilled student: loses <= 1 point of test accuracy and is >= 3x smaller on disk than float32;
- 50 % sparsity + one KD fine-tuning epoch: within 1 point of the unpruned distilled student;
- KD vs CE fine-tuning after pruning, at several sparsities and data-order seeds (accuracy only);
- latency medians with their spread (min-max), every model measured in this one process.

Usage: KD_LAB_CACHE_DIR=... python bench/compress.py [--preset classroom] [--sparsities 0.5,0.7,0.8,0.9] [--seeds 3]
Trained models come from the cache (trained first when missing); measurements are always fresh.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kd_core import compress as C  # noqa: E402
from kd_core.config import preset  # noqa: E402
from kd_core.data import load_dataset  # noqa: E402
from kd_core.evaluate import accuracy, predict_logits  # noqa: E402
from kd_core.experiment import balanced_subset, cached_teacher, load_student, run_experiment  # noqa: E402
from kd_core.train import configure_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="classroom")
    parser.add_argument("--sparsities", default="0.5,0.7,0.8,0.9")
    parser.add_argument("--seeds", type=int, default=3, help="data-order seeds of the KD vs CE fine-tuning sweep")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    threads = configure_threads()
    cfg = preset(args.preset)
    started = time.perf_counter()
    out = C.compress(cfg, C.CompressConfig(sparsity=0.5, quantize=True, latency_runs=args.runs), use_cache=False)
    rows = {r["id"]: r for r in out["rows"]}
    d, q, kd, ce = rows["distilled"], rows["distilled-int8"], rows["pruned-kd"], rows["pruned-ce"]

    # KD vs CE after pruning, over sparsities and seeds (the same pruned weights and images for both losses)
    dataset = load_dataset(cfg.dataset)
    result = run_experiment(cfg)
    teacher = cached_teacher(cfg, dataset)[0]
    distilled = load_student(result, "distilled")
    idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    x, y = dataset.train_x[idx], dataset.train_y[idx]
    soft = predict_logits(teacher, x)
    sweep = []
    for sparsity in [float(s) for s in args.sparsities.split(",")]:
        none = accuracy(predict_logits(C.prune_magnitude(distilled, sparsity), dataset.test_x), dataset.test_y)
        acc = {"kd": [], "ce": []}
        for seed in range(args.seeds):
            for loss, targets in (("kd", soft), ("ce", None)):
                model = C.finetune_pruned(distilled, sparsity, cfg, x, y, targets, seed=seed)
                acc[loss].append(accuracy(predict_logits(model, dataset.test_x), dataset.test_y))
        sweep.append({"sparsity": sparsity, "no_finetune": none,
                      **{f"{k}_mean": statistics.fmean(v) for k, v in acc.items()},
                      **{f"{k}_std": statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in acc.items()},
                      "kd_minus_ce_points": 100 * (statistics.fmean(acc["kd"]) - statistics.fmean(acc["ce"]))})

    report = {
        "preset": args.preset, "student": cfg.student, "threads": threads, "torch": out["torch"],
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores",
        "load_average_1m": os.getloadavg()[0],
        "bar": {
            "int8_accuracy_change_points": 100 * (q["accuracy"] - d["accuracy"]),
            "int8_size_ratio": d["size_bytes"] / q["size_bytes"],
            "int8_ok": q["accuracy"] >= d["accuracy"] - 0.01 and d["size_bytes"] / q["size_bytes"] >= 3.0,
            "pruned50_kd_change_points": 100 * (kd["accuracy"] - d["accuracy"]),
            "pruned50_ce_change_points": 100 * (ce["accuracy"] - d["accuracy"]),
            "pruned50_ok": kd["accuracy"] >= d["accuracy"] - 0.01,
        },
        "rows": [{"name": r["name"], "accuracy": r["accuracy"], "size_bytes": r["size_bytes"],
                  "size_gzip_bytes": r["size_gzip_bytes"], "nonzero_params": r["nonzero_params"],
                  "latency_ms_batch1": r["latency_ms"], "throughput_images_per_s": r["throughput"],
                  "peak_memory_bytes_batch1": r["peak_memory_bytes"],
                  "peak_memory_bytes_big_batch": r["peak_memory_batch_bytes"]} for r in out["rows"]],
        "finetune_sweep": sweep,
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
