"""Inference vs training speed per model: images per second of `predict_logits` at several batch sizes, and of a
training step at batch 32. Prints JSON.

Run `.venv/bin/python bench/inference.py [--images 2000] [--repeats 5]` on a quiet machine. The variants are
timed interleaved (A, B, C, A, B, C, ...) and the best of `--repeats` is kept, so a burst of load from another
process slows one sample, not one variant. Issue 16's bar: inference at least as fast per image as training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from kd_core.data import to_float  # noqa: E402
from kd_core.evaluate import predict_logits  # noqa: E402
from kd_core.models import create_model, memory_format  # noqa: E402
from kd_core.train import configure_threads  # noqa: E402

MODELS = ("keras-teacher", "keras-student", "classroom-teacher")
BATCHES = (64, 128, 256, 1000)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def training_seconds(model: torch.nn.Module, images: torch.Tensor, steps: int, batch: int = 32) -> float:
    """Seconds for `steps` Adam steps at `batch` (forward, cross-entropy, backward, update), as train() does."""
    model.train()
    layout = memory_format(model)
    model.to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = to_float(images), torch.randint(0, 10, (len(images),))
    start = time.perf_counter()
    for i in range(steps):
        rows = slice(i * batch % (len(x) - batch), i * batch % (len(x) - batch) + batch)
        loss = torch.nn.functional.cross_entropy(model(x[rows].contiguous(memory_format=layout)), y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> int:
    """Time every model's inference at each batch size and its training step; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=20)
    args = parser.parse_args()
    threads = configure_threads()
    torch.manual_seed(0)
    images = (torch.rand(args.images, 28, 28) * 255).to(torch.uint8)
    models = {name: create_model(name) for name in MODELS}
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.repeats):
        for name, model in models.items():
            for batch in BATCHES:
                start = time.perf_counter()
                predict_logits(model, images, batch)
                seconds = time.perf_counter() - start
                best[(name, f"infer_b{batch}")] = min(best.get((name, f"infer_b{batch}"), 1e9), seconds)
            seconds = training_seconds(model, images, args.train_steps)
            best[(name, "train_b32")] = min(best.get((name, "train_b32"), 1e9), seconds)
    report = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": threads,
                          "torch": torch.__version__, "load_average": list(os.getloadavg())},
              "images": args.images, "repeats": args.repeats, "models": {}}
    for name in MODELS:
        rates = {f"infer_b{b}": round(args.images / best[(name, f"infer_b{b}")]) for b in BATCHES}
        rates["train_b32"] = round(args.train_steps * 32 / best[(name, "train_b32")])
        rates["default_batch"] = predict_logits.__defaults__[0]
        rates["inference_over_training"] = round(
            args.images / best[(name, f"infer_b{rates['default_batch']}")] / rates["train_b32"], 2) \
            if rates["default_batch"] in BATCHES else None
        report["models"][name] = rates
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
