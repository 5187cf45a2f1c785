"""Evaluation: logits in inference mode, accuracy, per-class accuracy, confusion, agreement, latency."""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from torch import nn

from kd_core.data import to_float
from kd_core.models import activation_bytes, memory_format, random_images

BATCH_ACTIVATION_BYTES = 16 * 2 ** 20  # an inference batch's largest activation: about this CPU's L2 + L3 share
MIN_BATCH, MAX_BATCH = 32, 256


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """The context to compute in: bf16 autocast on the CPU for "bf16", plain fp32 for "fp32"."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16' (resolve 'auto' first), not {precision!r}")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def inference_batch_size(model: nn.Module) -> int:
    """The largest power of two from MIN_BATCH to MAX_BATCH whose largest activation fits BATCH_ACTIVATION_BYTES.

    Big batches amortise per-call overhead (small students), until a wide layer's output leaves the cache
    (keras-teacher, 230 kB per image: 64). Past 256 a small student's many layers no longer fit either: a
    keras-student's curve evaluation of 1,000 images (bf16, 1 thread) took 19.5 ms at 256 and 31.7 ms at 1,024
    (mean of 30, 2-core AMD EPYC Zen 4); bench/inference.py measures every batch size against this choice
    (its best-of-N hides that gap: the big batch is slow on average, not at best).
    """
    fits = max(1, BATCH_ACTIVATION_BYTES // activation_bytes(model))
    return max(MIN_BATCH, min(MAX_BATCH, 1 << (fits.bit_length() - 1)))


def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int | None = None,
                   precision: str = "fp32") -> torch.Tensor:
    """Float32 logits (N, classes) for uint8 images (N, 28, 28), computed in eval and inference mode.

    `batch_size` defaults to inference_batch_size(model); `precision` as `autocast` takes it.
    """
    model.eval()
    layout = memory_format(model)
    model.to(memory_format=layout)  # weights in the inputs' layout: a conv net's weights left contiguous (a fresh or
    # loaded model) run 1.5-2.7x slower on channels_last inputs (keras-student bf16: 19k vs 52k images/s, 1 thread)
    batch_size = batch_size or (inference_batch_size(model) if len(images) > MIN_BATCH else MIN_BATCH)
    parts = []
    with torch.inference_mode(), autocast(precision):
        for start in range(0, len(images), batch_size):
            batch = to_float(images[start:start + batch_size]).contiguous(memory_format=layout)
            parts.append(model(batch).float())
    return torch.cat(parts) if parts else torch.empty(0, 10)
def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float((logits.argmax(dim=1) == labels).float().mean()) if len(labels) else 0.0


def confusion_matrix(logits: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """Counts (true class, predicted class) as a (classes, classes) int64 tensor."""
    predicted = logits.argmax(dim=1)
    return torch.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> list[float]:
    """Accuracy on each true class (0 for a class with no examples)."""
    matrix = confusion_matrix(logits, labels, classes)
    totals = matrix.sum(dim=1).clamp(min=1)
    return (matrix.diagonal() / totals).tolist()


def agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """Fraction of inputs on which two models predict the same class."""
    return float((logits_a.argmax(dim=1) == logits_b.argmax(dim=1)).float().mean())


def latency(model: nn.Module, batch: int = 1, runs: int = 30, warmup: int = 5) -> dict[str, float]:
    """Per-image CPU latency in ms at `batch`: median and spread (min, max) over `runs` timed calls after warm-up."""
    model.eval()
    x = random_images(batch, model)
    timings = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                timings.append((time.perf_counter() - start) * 1000 / batch)
    return {"median_ms": statistics.median(timings), "min_ms": min(timings), "max_ms": max(timings),
            "batch": batch, "runs": runs}
