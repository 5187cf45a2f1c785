"""Evaluation: logits in inference mode, accuracy, per-class accuracy, confusion, agreement, latency."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from kd_core.data import to_float
from kd_core.models import memory_format


def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, classes) for uint8 images (N, 28, 28), computed without autograd in eval mode.

    Batches of 256 keep the activations in cache: 1.4x (keras-teacher) to 1.9x (classroom-teacher) the images
    per second of batches of 1000 (bench/inference.py).
    """
    model.eval()
    layout = memory_format(model)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = to_float(images[start:start + batch_size]).contiguous(memory_format=layout)
            parts.append(model(batch))
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
    x = torch.rand(batch, 1, 28, 28).contiguous(memory_format=memory_format(model))
    timings = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                timings.append((time.perf_counter() - start) * 1000 / batch)
    return {"median_ms": statistics.median(timings), "min_ms": min(timings), "max_ms": max(timings),
            "batch": batch, "runs": runs}
