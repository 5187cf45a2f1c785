"""Inference vs training speed per model: images per second of `predict_logits` at the batch it chooses
(kd_core.evaluate.inference_batch_size) and at fixed batch sizes, in channels_last and in plain NCHW, and of a
training step at batch 32. Prints JSON.

Run `.venv/bin/python bench/inference.py [--images 2000] [--repeats 5] [--precision fp32|bf16] [--threads N]` on a
quiet machine (inference in `--precision`; `--threads` defaults to this process's share of the cores). The variants are
timed interleaved (A, B, C, A, B, C, ...) and the best of `--repeats` is kept, so a burst of load from another
process slows one sample, not one variant. Issue 16's bar: inference at least as fast per image as training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model  # noqa: E402

import torch  # noqa: E402

from kd_core.data import to_float  # noqa: E402
from kd_core.evaluate import autocast, inference_batch_size, predict_logits  # noqa: E402
from kd_core.models import create_model, memory_format  # noqa: E402
from kd_core.train import configure_threads  # noqa: E402

MODELS = ("keras-teacher", "keras-student", "classroom-teacher", "tiny-mlp")
BATCHES = (32, 64, 128, 256, 512, 1024)


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


def nchw_seconds(model: torch.nn.Module, images: torch.Tensor, batch: int, precision: str) -> float:
    """Seconds for predict_logits' work at `batch` with plain NCHW inputs and weights (the layout it does not use)."""
    model.eval().to(memory_format=torch.contiguous_format)
    start = time.perf_counter()
    with torch.inference_mode(), autocast(precision):
        for first in range(0, len(images), batch):
            model(to_float(images[first:first + batch]))
    return time.perf_counter() - start


def main() -> int:
    """Time every model's inference at each batch size and its training step; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = configure_threads() if args.threads is None else args.threads
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = (torch.rand(args.images, 28, 28) * 255).to(torch.uint8)
    models = {name: create_model(name) for name in MODELS}
    chosen = {name: inference_batch_size(model) for name, model in models.items()}
    best: dict[tuple[str, str], float] = {}

    def keep(name: str, variant: str, seconds: float) -> None:
        best[(name, variant)] = min(best.get((name, variant), 1e9), seconds)

    for _ in range(args.repeats):
        for name, model in models.items():
            model.to(memory_format=memory_format(model))  # as train() leaves it
            start = time.perf_counter()
            predict_logits(model, images, precision=args.precision)
            keep(name, "infer_chosen", time.perf_counter() - start)
            for batch in BATCHES:
                start = time.perf_counter()
                predict_logits(model, images, batch, precision=args.precision)
                keep(name, f"infer_b{batch}", time.perf_counter() - start)
            keep(name, "infer_nchw_chosen", nchw_seconds(model, images, chosen[name], args.precision))
            keep(name, "train_b32", training_seconds(model, images, args.train_steps))
    report = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": threads,
                          "torch": torch.__version__, "load_average": list(os.getloadavg())},
              "precision": args.precision,
              "images": args.images, "repeats": args.repeats, "models": {}}
    for name in MODELS:
        rates: dict[str, float] = {variant: round(args.images / seconds) for (model, variant), seconds in best.items()
                                   if model == name and variant.startswith("infer")}
        rates["train_b32"] = round(args.train_steps * 32 / best[(name, "train_b32")])
        report["models"][name] = {"images_per_second": rates, "chosen_batch": chosen[name],
                                  "inference_over_training": round(rates["infer_chosen"] / rates["train_b32"], 2)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
