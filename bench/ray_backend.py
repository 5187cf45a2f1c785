"""The Ray backend vs the local one: a 3-seed classroom run, wall time and whether the numbers are equal. Prints JSON.

Run with `.venv/bin/python bench/ray_backend.py [--seeds 3] [--cpus N]` after `pip install -r requirements-ray.txt`.
Both runs use one torch thread per student (determinism holds per thread count) and the same cached
teacher; the local backend trains the 2 x seeds students one after another, Ray runs them as tasks on a
single-node Ray started here with `--cpus` CPUs (default: all). Also reported: the size of the data
sent to the workers once per run (`ray.put`) and how long that takes, against loading the dataset
in a worker. Run it on a quiet machine: other busy processes inflate every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KD_LAB_CACHE_DIR", tempfile.mkdtemp(prefix="kd-bench-ray-"))

import ray  # noqa: E402
import torch  # noqa: E402

from kd_core import distributed, experiment  # noqa: E402
from kd_core.config import preset  # noqa: E402
from kd_core.data import load_dataset  # noqa: E402
from kd_core.evaluate import predict_logits  # noqa: E402


@ray.remote(num_cpus=1)
def _load_in_worker(name: str) -> float:
    """Seconds a fresh worker takes to load the dataset itself (the alternative to ray.put)."""
    start = time.perf_counter()
    load_dataset(name)
    return time.perf_counter() - start


def timed_run(cfg, backend) -> tuple[float, dict]:
    """Wall seconds of the students of one run (teacher cached) and its result."""
    start = time.perf_counter()
    result = experiment.run_experiment(cfg, use_cache=False, backend=backend)
    return time.perf_counter() - start, result


def main() -> None:
    """Time local vs Ray on the classroom preset and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the single-node Ray (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = preset("classroom").replace(seeds=args.seeds)
    dataset = load_dataset(cfg.dataset)
    experiment.get_teacher(cfg, dataset)  # trained and cached now: both runs load the same cached teacher
    teacher = experiment.cached_teacher(cfg, dataset)[0]
    local_seconds, local = timed_run(cfg, distributed.LocalBackend())

    start = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False)
    init_seconds = time.perf_counter() - start
    ray_seconds, remote = timed_run(cfg, distributed.RayBackend())  # first run: worker processes start
    ray_warm_seconds, _ = timed_run(cfg, distributed.RayBackend())
    idx = experiment.balanced_subset(dataset.train_y, cfg.student_train_limit)
    shared = (dataset.train_x[idx], dataset.train_y[idx], dataset.test_x, dataset.test_y,
              predict_logits(teacher, dataset.train_x[idx]), predict_logits(teacher, dataset.test_x))
    start = time.perf_counter()
    ray.get(ray.put(shared))
    put_seconds = time.perf_counter() - start
    load_seconds = ray.get(_load_in_worker.remote(cfg.dataset))
    cpus = ray.cluster_resources().get("CPU")
    ray.shutdown()

    def accs(result: dict, role: str) -> list[float]:
        return [r["accuracy"] for r in result["models"][role]["runs"]]

    equal = all(accs(local, role) == accs(remote, role) for role in ("distilled", "scratch")) and all(
        a["history"]["loss"] == b["history"]["loss"]
        for role in ("distilled", "scratch")
        for a, b in zip(local["models"][role]["runs"], remote["models"][role]["runs"]))
    print(json.dumps({
        "machine": {"platform": platform.platform(), "cores": os.cpu_count(), "ray_cpus": cpus,
                    "load_average": os.getloadavg(), "torch": torch.__version__, "ray": ray.__version__},
        "seeds": args.seeds, "students": 2 * args.seeds, "torch_threads_per_student": 1,
        "local_seconds": round(local_seconds, 2),
        "ray_init_seconds": round(init_seconds, 2),
        "ray_first_run_seconds": round(ray_seconds, 2), "ray_second_run_seconds": round(ray_warm_seconds, 2),
        "results_exactly_equal": equal,
        "distilled_accuracies": accs(remote, "distilled"), "scratch_accuracies": accs(remote, "scratch"),
        "shared_data_bytes": len(pickle.dumps(shared)), "ray_put_get_seconds": round(put_seconds, 3),
        "dataset_load_in_fresh_worker_seconds": round(load_seconds, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
