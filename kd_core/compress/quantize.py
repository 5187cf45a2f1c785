"""Quantization: int8 post-training *static* quantization in eager mode (`torch.ao.quantization`).

A QuantWrapper quantizes the input and dequantizes the logits; the x86 backend's histogram observers set the
activation ranges on training images, and weights get one int8 scale per tensor by default (see `_qconfig`).
PyTorch 2.14 still runs this path but marks `torch.ao.quantization` and quantized tensor dtypes as deprecated
in favour of torchao (`quantize_`, pt2e); the eager path is the one that quantizes a small CPU CNN's
convolutions today without extra packages.
"""

from __future__ import annotations

import copy
import warnings
from typing import Iterable

import torch
from torch import nn

from kd_core.data import to_float
from kd_core.models import create_model, random_images

# The eager quantization API and quantized dtypes warn on every call in torch 2.14 (see the module docstring).
for _message in (r"torch\.ao\.quantization is deprecated", r"(?s).*quantized tensor creation functions",
                 r"(?s)Please use quant_min and quant_max", r"(?s).*torchao"):
    warnings.filterwarnings("ignore", message=_message)


def _qconfig(backend: str, per_channel: bool = False):
    """The backend's default post-training static qconfig: histogram-calibrated uint8 activations, and int8
    weights with one scale per tensor, or per output channel (the x86 default) when `per_channel`.

    Per tensor is the default here: on the classroom student it costs no accuracy (91.9 % vs 91.8 % for
    per-channel in one run), while per-channel scales are stored as float64 + int64 per channel in extra
    file records, about 8 % of this 28 KB int8 file.
    """
    from torch.ao.quantization import QConfig, default_weight_observer, get_default_qconfig

    qconfig = get_default_qconfig(backend)
    return qconfig if per_channel else QConfig(activation=qconfig.activation, weight=default_weight_observer)


def _int8(model: nn.Module, batches: Iterable[torch.Tensor], backend: str, per_channel: bool) -> nn.Module:
    """`model` (consumed) wrapped, observed on the float `batches` and converted to int8 layers."""
    from torch.ao.quantization import QuantWrapper, convert, prepare

    torch.backends.quantized.engine = backend
    wrapped = QuantWrapper(model).eval()
    wrapped.qconfig = _qconfig(backend, per_channel)
    prepare(wrapped, inplace=True)
    with torch.inference_mode():
        for batch in batches:
            wrapped(batch)
    convert(wrapped, inplace=True)
    return wrapped.eval()


def quantize_int8(model: nn.Module, calibration: torch.Tensor, backend: str = "x86",
                  per_channel: bool = False) -> nn.Module:
    """An int8 copy of float `model` by eager-mode post-training static quantization.

    `calibration` is uint8 training images (N, 28, 28): observers record the activation ranges on them,
    then conv and linear layers are swapped for int8 kernels. The model takes and returns float tensors
    (a QuantWrapper quantizes the input and dequantizes the logits).
    """
    batches = (to_float(calibration[start:start + 256]) for start in range(0, len(calibration), 256))
    return _int8(copy.deepcopy(model), batches, backend, per_channel)  # pruned models: make_permanent first


def int8_skeleton(architecture: str, backend: str = "x86", per_channel: bool = False) -> nn.Module:
    """An int8 model of `architecture` with placeholder values, ready for `load_state_dict` of a saved int8 model."""
    one_batch = (random_images(2) for _ in range(1))  # observers need one batch before convert
    return _int8(create_model(architecture), one_batch, backend, per_channel)


# bench/int8.py on the project's 2-core AMD EPYC (Zen 4, AVX-512), 1 torch thread, 2026-12-02: keras-student ms/image
COMPILED_BATCH1_MS = {"float32": 0.069, "int8": 0.083}


def speed_note(float_row: dict, int8_row: dict) -> str:
    """Markdown: how the int8 row's speed compares with its float32 source (kd_core.compress.measure rows), and why."""
    f, q = float_row["latency_ms"]["median_ms"], int8_row["latency_ms"]["median_ms"]
    ft, qt = float_row["throughput"]["median"], int8_row["throughput"]["median"]
    batch = int8_row["throughput"]["batch"]
    smaller = float_row["size_bytes"] / int8_row["size_bytes"]
    at_batch = (f"At batch {batch}, where arithmetic counts more, int8 does {qt:,.0f} images/s against {ft:,.0f} "
                f"({qt / ft:.1f}× float32's rate).")
    if q < f:
        return f"**int8 is faster here:** {q:.3f} ms per image at batch 1 against {f:.3f} ms in float32. {at_batch}"
    return (f"**Why int8 is not faster at batch 1:** {q:.3f} ms per image against {f:.3f} ms in float32 "
            f"({q / f:.1f}× slower). This network does {float_row['flops'] / 1e6:.2f} MFLOPs per image, so the time "
            "goes to fixed costs per layer (quantizing the input, re-quantizing between layers, dequantizing the "
            f"logits, one call per layer), not to multiply-adds. {at_batch} Compiled (torch.compile, and torchao's "
            "PT2E int8 flow for the x86 CPU), int8 still trails float32 at batch 1: "
            f"{COMPILED_BATCH1_MS['int8']} against {COMPILED_BATCH1_MS['float32']} ms (`bench/int8.py`, 2-core AMD "
            f"EPYC, 1 thread). For a network this small, int8's gain is the file: {smaller:.1f}× smaller.")
