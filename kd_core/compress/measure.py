"""Measuring one model: size on disk (raw and gzip), weight sparsity, CPU latency and throughput, peak memory.

Every figure is taken here in this process, so the rows of one compression run compare fairly.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.ao.nn.quantized as nnq
from torch import nn

from kd_core.data import Dataset
from kd_core.evaluate import accuracy, latency, predict_logits
from kd_core.models import random_images

_WEIGHTED = (nn.Conv2d, nn.Linear, nnq.Conv2d, nnq.Linear)   # float and int8 layers whose weights count for sparsity


def saved_state_dict(model: nn.Module) -> bytes:
    """The bytes of `torch.save(model.state_dict())`: the weights file the export writes."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def state_dict_bytes(model: nn.Module) -> int:
    """Size on disk: bytes of `torch.save(model.state_dict())`, the file the export writes."""
    return len(saved_state_dict(model))


def gzip_bytes(model: nn.Module) -> int:
    """Bytes of the saved state_dict after gzip: where pruning's zeros pay off (a dense file keeps them)."""
    return len(gzip.compress(saved_state_dict(model), compresslevel=6))


def _layer_weights(model: nn.Module) -> Iterator[torch.Tensor]:
    """The weights of the model's float and int8 conv/linear layers (quantized modules expose weight())."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        weight = weight() if callable(weight) else weight
        if isinstance(module, _WEIGHTED) and isinstance(weight, torch.Tensor):
            yield weight


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries among the conv and linear weights (float or int8 models)."""
    zeros = total = 0
    for weight in _layer_weights(model):
        values = weight.int_repr() - _zero_points(weight) if weight.is_quantized else weight.detach()
        zeros += int((values == 0).sum())
        total += values.numel()
    return zeros / total if total else 0.0


def _weight_count(model: nn.Module) -> int:
    """Number of conv and linear weight entries (what sparsity is a fraction of)."""
    return sum(weight.numel() for weight in _layer_weights(model))


def _zero_points(weight: torch.Tensor) -> torch.Tensor:
    """Zero points of a quantized weight, broadcastable to its int representation."""
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        shape = [1] * weight.dim()
        shape[weight.q_per_channel_axis()] = -1
        return weight.q_per_channel_zero_points().reshape(shape)
    return torch.tensor(weight.q_zero_point())


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the profiler's C++ start/stop lines on stderr; only on the main thread (a CLI), never in a server."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_bytes(model: nn.Module, batch: int = 1) -> int:
    """Peak inference memory at `batch`: weights + input + the most the forward pass holds allocated at once.

    The last term is measured, not estimated: torch's profiler records every CPU allocation and free
    of one forward pass (activations, im2col buffers, pooling indices), and the running sum's maximum
    is the peak. It excludes the Python interpreter and torch's own code, which every model shares.
    """
    from torch.autograd.profiler import profile

    model.eval()
    x = random_images(batch, model)  # in the layout kd_core.evaluate gives its inputs
    with torch.inference_mode():
        model(x)  # warm-up: one-time allocations (packed weights, caches) are not the model's working memory
        with _quiet_native_stderr(), profile(profile_memory=True, use_kineto=False) as prof:
            model(x)
    changes = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                     for e in prof.function_events)
    running = peak = 0
    for _, change in changes:
        running += change
        peak = max(peak, running)
    weights = sum(t.numel() * t.element_size() for t in _tensors(model))
    return weights + x.numel() * x.element_size() + peak


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    """The tensors of a model's state_dict (float or int8), unpacking quantized linear layers' packed tuples."""
    found: list[torch.Tensor] = []
    for value in model.state_dict().values():
        items = value if isinstance(value, tuple) else (value,)
        found.extend(v for v in items if isinstance(v, torch.Tensor))
    return found


def nonzero_ms(ms: float) -> float:
    """A timing in ms, never zero (a clock tick can round a tiny model's call down to 0)."""
    return max(ms, 1e-6)


def measure_row(model: nn.Module, dataset: Dataset, *, flops: int, params: int, runs: int,
                batch: int) -> dict[str, Any]:
    """One row's measurements: accuracy, size, sparsity, latency (batch 1), throughput (at `batch`), peak memory.

    `flops` and `params` come from the float source: int8 layers do the same multiply-adds in int8.
    Latency and throughput are medians (with min and max) of `runs` timed calls after warm-up.
    The test logits come back under "_logits" (for agreement between rows; not stored).
    """
    logits = predict_logits(model, dataset.test_x)
    b1 = latency(model, batch=1, runs=runs, warmup=5)
    big = latency(model, batch=batch, runs=runs, warmup=3)
    sparsity = weight_sparsity(model)
    return {
        "accuracy": accuracy(logits, dataset.test_y),
        "params": params,
        "nonzero_params": params - round(sparsity * _weight_count(model)),
        "sparsity": sparsity,
        "size_bytes": state_dict_bytes(model),
        "size_gzip_bytes": gzip_bytes(model),
        "flops": flops,
        "latency_ms": {k: b1[k] for k in ("median_ms", "min_ms", "max_ms", "runs")},
        "throughput": {"median": 1000 / nonzero_ms(big["median_ms"]), "min": 1000 / nonzero_ms(big["max_ms"]),
                       "max": 1000 / nonzero_ms(big["min_ms"]), "batch": batch, "runs": big["runs"]},
        "peak_memory_bytes": peak_memory_bytes(model, 1),
        "peak_memory_batch_bytes": peak_memory_bytes(model, batch),
        "_logits": logits,
    }
