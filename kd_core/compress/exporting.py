"""Export and import: weights next to a JSON config that rebuilds the model, ONNX for float models, checked loading.

Weights are `torch.save` of the state_dict (loadable with `weights_only=True`); ONNX comes from the
torch.export-based exporter. `load_export` refuses oversized or malformed files before reading them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kd_core import pyast, store
from kd_core.compress.measure import saved_state_dict
from kd_core.compress.quantize import int8_skeleton
from kd_core.models import MODELS, create_model, random_images

EXPORT_FORMAT = "kd-lab-model"
EXPORT_VERSION = 1
MAX_WEIGHTS_BYTES = 64 * 1024 * 1024   # a KD Lab student is far below this; bigger files are refused unread
MAX_CONFIG_BYTES = 64 * 1024
AST_RACE_RETRIES = 3                  # ONNX export attempts when CPython 3.11's ast races (see onnx_bytes)
INPUT_NOTE = "float32 (N, 1, 28, 28): uint8 pixels divided by 255, no other normalisation"


class ExportError(ValueError):
    """An exported model that cannot be loaded: too big, malformed, or not matching its config."""


def export_model(model: nn.Module, folder: Path, name: str, *, architecture: str, precision: str,
                 meta: dict[str, Any], backend: str = "x86", per_channel: bool = False,
                 onnx: bool = True) -> dict[str, str]:
    """Write `name`.pt (state_dict), `name`.json (config that rebuilds it) and, for float models, `name`.onnx.

    Returns {"weights": file, "config": file[, "onnx": file]} (file names inside `folder`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights = saved_state_dict(model)
    files = {"weights": f"{name}.pt", "config": f"{name}.json"}
    config = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "architecture": architecture,
              "precision": precision, "quantization": ({"backend": backend, "method": "eager post-training static",
                                                        "per_channel": per_channel}
                                                       if precision == "int8" else None),
              "input": INPUT_NOTE, "output": "logits (N, classes); argmax is the predicted class",
              "weights_file": files["weights"], "weights_sha256": hashlib.sha256(weights).hexdigest(),
              "weights_bytes": len(weights), "torch": torch.__version__,
              "load": "kd_core.compress.load_export(config_path)", **meta}
    store.atomic_write(folder / files["weights"], weights)
    store.atomic_write(folder / files["config"], json.dumps(config, indent=1).encode())
    if onnx and precision == "float32":
        path = folder / f"{name}.onnx"
        store.atomic_write(path, onnx_bytes(model))
        files["onnx"] = path.name
    return files


def onnx_bytes(model: nn.Module) -> bytes:
    """The float model as an ONNX file (input "image" with a dynamic batch dimension, output "logits")."""
    model = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)  # pruned: make_permanent first
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        # the exporter prints progress lines; keep the CLI's table clean (Python-level stdout only)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            # CPython 3.11's ast.parse is not thread-safe: onnxscript parses its sources while another thread
            # (a page's script run) parses too, and fails with pyast.RACE; a retry succeeds
            program = pyast.retry_race(
                lambda: torch.onnx.export(model, (random_images(2),), dynamo=True, input_names=["image"],
                                          output_names=["logits"], dynamic_shapes=({0: "batch"},), verbose=False),
                AST_RACE_RETRIES)
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return program.model_proto.SerializeToString()


def load_export(config_path: Path) -> nn.Module:
    """Rebuild an exported model from its JSON config and weights file, checking both before loading.

    Oversized or malformed files are refused with an ExportError; weights are read with
    `torch.load(weights_only=True)` only after their size and SHA-256 match the config.
    """
    config_path = Path(config_path)
    if not config_path.is_file() or config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ExportError(f"{config_path.name}: missing or larger than {MAX_CONFIG_BYTES // 1024} KB")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportError(f"{config_path.name} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{config_path.name} is not a KD Lab model config")
    architecture, precision = config.get("architecture"), config.get("precision")
    if architecture not in MODELS or precision not in ("float32", "int8"):
        raise ExportError(f"{config_path.name}: unknown architecture {architecture!r} or precision {precision!r}")
    weights_path = config_path.parent / Path(str(config.get("weights_file", ""))).name
    if not weights_path.is_file():
        raise ExportError(f"weights file {weights_path.name} is missing")
    if weights_path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ExportError(f"{weights_path.name} is larger than {MAX_WEIGHTS_BYTES // 2**20} MB; refused unread")
    data = weights_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != config.get("weights_sha256"):
        raise ExportError(f"{weights_path.name} does not match the checksum in {config_path.name}")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if precision == "int8":
            scheme = config.get("quantization") or {}
            model = int8_skeleton(architecture, str(scheme.get("backend", "x86")), bool(scheme.get("per_channel")))
        else:
            model = create_model(architecture)
        model.load_state_dict(state)
    except Exception as exc:  # a damaged pickle stream or mismatched tensors raise many kinds
        raise ExportError(f"{weights_path.name} does not load as {precision} {architecture}: {exc}") from None
    return model.eval()
