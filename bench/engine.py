"""Engine benchmark: the classroom demo's wall time and gain, the Keras preset's speed. Prints JSON.

Run with `make bench` or `.venv/bin/python bench/engine.py [--skip-fashion]`. Each CLI run is timed as a
whole command in a subprocess with its own fresh cache folder, as a user would run it. Run it on a quiet
machine: other busy processes inflate every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kd_core.data import availability  # noqa: E402  (light: torch is imported only by student_epoch)


def cli_run(args: list[str], cache: Path) -> dict:
    """Run `python -m kd_core run ARGS --json` with `cache` as the cache folder; wall time and the result."""
    out = cache / f"result-{time.monotonic_ns()}.json"
    env = {**os.environ, "KD_LAB_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kd_core", "run", *args, "--json", str(out)], check=True, env=env,
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return {"wall_seconds": round(wall, 2), "result": json.loads(out.read_text())}


def accuracies(result: dict) -> dict:
    """Per-model accuracy lists in percent, and training seconds."""
    return {role: {"accuracies_pct": [round(100 * a, 2) for a in m["accuracies"]],
                   "mean_pct": round(100 * m["accuracy_mean"], 2), "train_seconds": round(m["seconds"], 2)}
            for role, m in result["models"].items()}


def classroom() -> dict:
    """Bar 1 and 2: cold and teacher-cached wall time for one seed; the gain over three seeds."""
    with tempfile.TemporaryDirectory(prefix="kd-bench-") as tmp:
        cache = Path(tmp)
        cold = cli_run([], cache)
        warm = cli_run(["--no-cache"], cache)
        seeds = cli_run(["--seeds", "3"], cache)
    d = seeds["result"]["models"]["distilled"]["accuracies"]
    s = seeds["result"]["models"]["scratch"]["accuracies"]
    return {
        "cold_one_seed_wall_seconds": cold["wall_seconds"], "cold_models": accuracies(cold["result"]),
        "teacher_cached_one_seed_wall_seconds": warm["wall_seconds"],
        "three_seeds": accuracies(seeds["result"]), "three_seeds_wall_seconds": seeds["wall_seconds"],
        "gain_points": round(100 * (sum(d) / len(d) - sum(s) / len(s)), 2),
        "every_distilled_beats_every_scratch": min(d) > max(s),
    }


def keras_fashion() -> dict:
    """Bar 3: the Keras preset, one epoch on 6,000 Fashion-MNIST images, time per phase."""
    with tempfile.TemporaryDirectory(prefix="kd-bench-") as tmp:
        run = cli_run(["--dataset", "fashion-mnist", "--preset", "keras", "--epochs", "1",
                       "--train-limit", "6000"], Path(tmp))
    return {"wall_seconds": run["wall_seconds"], "models": accuracies(run["result"])}


def student_epoch() -> dict:
    """Bar 4: keras-student, one epoch of the 60,000 Fashion-MNIST training images, batch 256."""
    import torch

    from kd_core.data import load_dataset
    from kd_core.models import create_model
    from kd_core.train import configure_threads, train

    configure_threads()
    dataset = load_dataset("fashion-mnist")
    torch.manual_seed(0)
    model = create_model("keras-student")
    history = train(model, dataset.train_x, dataset.train_y, epochs=1, batch_size=256, lr=1e-3, seed=0)
    return {"images": len(dataset.train_y), "batch_size": 256, "train_seconds": round(history.elapsed[-1], 2)}


def main() -> None:
    """Run the benchmarks and print one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-fashion", action="store_true", help="only the classroom benchmark")
    args = parser.parse_args()
    report = {"machine": {"cores": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version()},
              "classroom": classroom()}
    if not args.skip_fashion:
        if availability("fashion-mnist")[0]:
            report["keras_fashion_6000_one_epoch"] = keras_fashion()
            report["keras_student_60000_one_epoch"] = student_epoch()
        else:
            report["fashion_mnist"] = "not available here: " + availability("fashion-mnist")[1]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
