"""Efficiency and compression: measure every model, then distil -> prune -> quantize, and export the result.

Each model becomes one row: parameters, size on disk, FLOPs, CPU latency at batch 1 and throughput at a
large batch (medians after warm-up, with min/max), peak inference memory, test accuracy. All rows are
measured in the same process, one after the other, so their ratios are fair.

- Quantization: int8 post-training *static* quantization in eager mode (`torch.ao.quantization`:
  QuantWrapper, the x86 backend's histogram-calibrated activations on training images, int8 weights
  with one scale per tensor by default, see `_qconfig`). PyTorch 2.14 still runs it but marks `torch.ao.quantization` and
  quantized tensor dtypes as deprecated in favour of torchao (`quantize_`, pt2e); the eager path is
  the one that quantizes a small CPU CNN's convolutions today without extra packages.
- Pruning: global magnitude (L1) pruning of the conv and linear weights (`torch.nn.utils.prune`), then
  an optional fine-tuning epoch on the students' labelled images with the KD loss, and, to compare,
  with labels alone (CE). The masks stay in place while fine-tuning, so pruned weights stay zero.
- Export: weights (`torch.save` of the state_dict, loadable with `weights_only=True`) next to a JSON
  config that rebuilds the model, and ONNX (torch.export-based exporter) for float models.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import hashlib
import io
import json
import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from kd_core import store
from kd_core.config import RunConfig, checked_replace, require
from kd_core.data import Dataset, load_dataset, to_float
from kd_core.evaluate import accuracy, latency, predict_logits
from kd_core.experiment import balanced_subset, cached_teacher, run_experiment, student_checkpoint_path
from kd_core.models import MODELS, count_params, create_model, flops_per_image
from kd_core.train import Progress, train

# The eager quantization API and quantized dtypes warn on every call in torch 2.14 (see the module docstring).
for _message in (r"torch\.ao\.quantization is deprecated", r"(?s).*quantized tensor creation functions",
                 r"(?s)Please use quant_min and quant_max", r"(?s).*torchao"):
    warnings.filterwarnings("ignore", message=_message)

EXPORT_FORMAT = "kd-lab-model"
EXPORT_VERSION = 1
MAX_WEIGHTS_BYTES = 64 * 1024 * 1024   # a KD Lab student is far below this; bigger files are refused unread
MAX_CONFIG_BYTES = 64 * 1024
INPUT_NOTE = "float32 (N, 1, 28, 28): uint8 pixels divided by 255, no other normalisation"
PIPELINE = ("distilled", "pruned-kd", "pruned-kd-int8")   # distil -> prune (+KD epoch) -> quantize
EXPORTED = ("distilled", "distilled-int8", "pruned-kd", "pruned-kd-int8")


@dataclass(frozen=True)
class CompressConfig:
    """Settings of one compression run (the trained models come from a RunConfig's experiment)."""

    sparsity: float = 0.5           # fraction of conv/linear weights set to zero, smallest magnitudes first
    finetune_epochs: int = 1        # epochs after pruning, once with the KD loss and once with labels alone
    quantize: bool = True           # add the int8 rows (post-training static quantization)
    calibration_images: int = 512   # training images whose activations set the int8 ranges
    latency_runs: int = 30          # timed calls per latency figure, after warm-up
    throughput_batch: int = 256     # batch size of the throughput figure
    backend: str = "x86"            # quantized engine (x86 = fbgemm + oneDNN); "qnnpack" for ARM
    per_channel: bool = False       # int8 weight scales per output channel (x86's default) or one per tensor
    export_onnx: bool = True        # write ONNX files for the float models that are exported

    def replace(self, **changes: Any) -> "CompressConfig":
        """A copy with `changes`; an unknown key raises ValueError naming it; values are checked."""
        return checked_replace(self, "compression", changes).validated()

    def validated(self) -> "CompressConfig":
        """This config, or ValueError naming the first out-of-range value."""
        checks = [
            (0.0 <= self.sparsity < 1.0, "sparsity must be at least 0 and below 1"),
            (0 <= self.finetune_epochs <= 10, "fine-tuning epochs must be between 0 and 10"),
            (self.calibration_images >= 10, "calibration needs at least 10 images"),
            (self.latency_runs >= 20, "latency needs at least 20 timed runs"),
            (self.throughput_batch >= 2, "the throughput batch must be at least 2"),
            (self.backend in torch.backends.quantized.supported_engines,
             f"quantized backend must be one of {torch.backends.quantized.supported_engines}"),
        ]
        require(checks)
        return self

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of all settings."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StageEvent:
    """Progress of a compression run, shaped like experiment.Event so the shared progress panel can draw it."""

    phase: str
    seed: int
    progress: Progress
    overall: float
    text: str             # what is happening now, in words


# ---------------------------------------------------------------------------------------------- measuring

def state_dict_bytes(model: nn.Module) -> int:
    """Size on disk: bytes of `torch.save(model.state_dict())`, the file the export writes."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(buffer.getvalue())


def gzip_bytes(model: nn.Module) -> int:
    """Bytes of the saved state_dict after gzip: where pruning's zeros pay off (a dense file keeps them)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(gzip.compress(buffer.getvalue(), compresslevel=6))


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """The (module, "weight") pairs magnitude pruning acts on: every conv and linear weight."""
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries among the conv and linear weights (float or int8 models)."""
    zeros = total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        weight = weight() if callable(weight) else weight   # quantized modules expose weight()
        if not isinstance(weight, torch.Tensor) or not isinstance(module, _WEIGHTED):
            continue
        values = weight.int_repr() - _zero_points(weight) if weight.is_quantized else weight.detach()
        zeros += int((values == 0).sum())
        total += values.numel()
    return zeros / total if total else 0.0


def _zero_points(weight: torch.Tensor) -> torch.Tensor:
    """Zero points of a quantized weight, broadcastable to its int representation."""
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        shape = [1] * weight.dim()
        shape[weight.q_per_channel_axis()] = -1
        return weight.q_per_channel_zero_points().reshape(shape)
    return torch.tensor(weight.q_zero_point())


def _weighted_types() -> tuple[type, ...]:
    """Float and int8 conv/linear module classes (the ones whose weights count for sparsity)."""
    import torch.ao.nn.quantized as nnq

    return (nn.Conv2d, nn.Linear, nnq.Conv2d, nnq.Linear)


_WEIGHTED = _weighted_types()


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
    x = _example_input(model, batch)
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


def _example_input(model: nn.Module, batch: int) -> torch.Tensor:
    """A random input batch in the memory format the model runs fastest in (as kd_core.evaluate uses)."""
    from kd_core.models import uses_conv

    memory_format = torch.channels_last if uses_conv(model) else torch.contiguous_format
    return torch.rand(batch, 1, 28, 28).contiguous(memory_format=memory_format)


def measure(model: nn.Module, dataset: Dataset, ccfg: CompressConfig, *, flops: int, params: int) -> dict[str, Any]:
    """One row's measurements: accuracy, size, sparsity, latency (batch 1), throughput, peak memory.

    `flops` and `params` come from the float source: int8 layers do the same multiply-adds in int8.
    """
    logits = predict_logits(model, dataset.test_x)
    b1 = latency(model, batch=1, runs=ccfg.latency_runs, warmup=5)
    big = latency(model, batch=ccfg.throughput_batch, runs=ccfg.latency_runs, warmup=3)
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
        "throughput": {"median": 1000 / _nonzero_ms(big["median_ms"]), "min": 1000 / _nonzero_ms(big["max_ms"]),
                       "max": 1000 / _nonzero_ms(big["min_ms"]), "batch": ccfg.throughput_batch, "runs": big["runs"]},
        "peak_memory_bytes": peak_memory_bytes(model, 1),
        "peak_memory_batch_bytes": peak_memory_bytes(model, ccfg.throughput_batch),
        "_logits": logits,
    }


def _nonzero_ms(ms: float) -> float:
    """A timing in ms, never zero (a clock tick can round a tiny model's call down to 0)."""
    return max(ms, 1e-6)


def _weight_count(model: nn.Module) -> int:
    """Number of conv and linear weight entries (what sparsity is a fraction of)."""
    total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        weight = weight() if callable(weight) else weight
        if isinstance(module, _WEIGHTED) and isinstance(weight, torch.Tensor):
            total += weight.numel()
    return total


# ------------------------------------------------------------------------------------------- compressing

def prune_magnitude(model: nn.Module, sparsity: float) -> nn.Module:
    """A copy of `model` with the `sparsity` fraction of its conv/linear weights (smallest |w|, all layers
    ranked together) set to zero. The masks stay attached (weight = weight_orig * mask) so fine-tuning
    keeps them zero; call `make_permanent` before saving or exporting."""
    from torch.nn.utils import prune

    pruned = copy.deepcopy(model)
    if sparsity > 0:
        prune.global_unstructured(prunable(pruned), pruning_method=prune.L1Unstructured, amount=float(sparsity))
    return pruned


def finetune_pruned(model: nn.Module, sparsity: float, cfg: RunConfig, images: torch.Tensor, labels: torch.Tensor,
                    teacher_logits: torch.Tensor | None, *, epochs: int = 1, seed: int = 0,
                    on_progress: Callable[[Progress], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> nn.Module:
    """`model` pruned to `sparsity`, then fine-tuned for `epochs` on `images`: with `cfg`'s KD loss (T, alpha,
    T²) when `teacher_logits` are given, else with labels alone (CE). Same optimizer settings and data order
    (`seed`) either way; masks are made permanent at the end."""
    pruned = prune_magnitude(model, sparsity)  # the same mask every time: it depends only on |w|
    if epochs:
        train(pruned, images, labels, epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, adam_eps=cfg.adam_eps,
              seed=seed, teacher_logits=teacher_logits, temperature=cfg.temperature,
              alpha=cfg.alpha if teacher_logits is not None else 0.0, t_squared=cfg.t_squared,
              on_progress=on_progress, should_stop=should_stop)
    return make_permanent(pruned).eval()


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold the pruning masks into the weights (plain tensors again, zeros kept); returns the model."""
    from torch.nn.utils import prune

    for module, name in prunable(model):
        if prune.is_pruned(module) and hasattr(module, f"{name}_orig"):
            prune.remove(module, name)
    return model


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


def quantize_int8(model: nn.Module, calibration: torch.Tensor, backend: str = "x86",
                  per_channel: bool = False) -> nn.Module:
    """An int8 copy of float `model` by eager-mode post-training static quantization.

    `calibration` is uint8 training images (N, 28, 28): observers record the activation ranges on them,
    then conv and linear layers are swapped for int8 kernels. The model takes and returns float tensors
    (a QuantWrapper quantizes the input and dequantizes the logits).
    """
    from torch.ao.quantization import QuantWrapper, convert, prepare

    torch.backends.quantized.engine = backend
    wrapped = QuantWrapper(copy.deepcopy(model)).eval()  # pruned models: make_permanent first
    wrapped.qconfig = _qconfig(backend, per_channel)
    prepare(wrapped, inplace=True)
    with torch.inference_mode():
        for start in range(0, len(calibration), 256):
            wrapped(to_float(calibration[start:start + 256]))
    convert(wrapped, inplace=True)
    return wrapped.eval()


def int8_skeleton(architecture: str, backend: str = "x86", per_channel: bool = False) -> nn.Module:
    """An int8 model of `architecture` with placeholder values, ready for `load_state_dict` of a saved int8 model."""
    from torch.ao.quantization import QuantWrapper, convert, prepare

    torch.backends.quantized.engine = backend
    wrapped = QuantWrapper(create_model(architecture)).eval()
    wrapped.qconfig = _qconfig(backend, per_channel)
    prepare(wrapped, inplace=True)
    with torch.inference_mode():
        wrapped(torch.rand(2, 1, 28, 28))  # observers need one batch before convert builds the int8 layers
    convert(wrapped, inplace=True)
    return wrapped.eval()


# ---------------------------------------------------------------------------------------------- exporting

def export_model(model: nn.Module, folder: Path, name: str, *, architecture: str, precision: str,
                 meta: dict[str, Any], backend: str = "x86", per_channel: bool = False,
                 onnx: bool = True) -> dict[str, str]:
    """Write `name`.pt (state_dict), `name`.json (config that rebuilds it) and, for float models, `name`.onnx.

    Returns {"weights": file, "config": file[, "onnx": file]} (file names inside `folder`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    weights = buffer.getvalue()
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
    import logging

    model = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)  # pruned: make_permanent first
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _quiet_stdout():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (torch.rand(2, 1, 28, 28),), dynamo=True, input_names=["image"],
                                        output_names=["logits"], dynamic_shapes=({0: "batch"},), verbose=False)
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return program.model_proto.SerializeToString()


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """The ONNX exporter prints progress lines; keep the CLI's table clean (Python-level stdout only)."""
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):
        yield


class ExportError(ValueError):
    """An exported model that cannot be loaded: too big, malformed, or not matching its config."""


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


# ----------------------------------------------------------------------------------------------- pipeline

def compress_key(cfg: RunConfig, ccfg: CompressConfig, dataset: Dataset) -> str:
    """Cache key of a compression run: the experiment's config and data, plus the compression settings."""
    return store.config_key({"kind": "compress", "run": cfg.as_dict(), "data": dataset.fingerprint,
                             "compress": ccfg.as_dict()})


def cached_compression(cfg: RunConfig, ccfg: CompressConfig, dataset: Dataset | None = None) -> dict[str, Any] | None:
    """The stored compression result for these settings, or None (also None when its export files are gone)."""
    dataset = dataset or load_dataset(cfg.dataset)
    key = compress_key(cfg, ccfg, dataset)
    found = store.load_json(store.cache_path("compress", f"{key}.json"))
    if found is None or not all((export_folder(key) / f).is_file()
                                for files in found.get("exports", {}).values() for f in files.values()):
        return None
    return found


def export_folder(key: str) -> Path:
    """Where a compression run's exported files live."""
    return store.cache_path("compress", key)


def _load_student(result: dict[str, Any], role: str) -> nn.Module:
    """The seed-0 `role` student of an experiment result, from its checkpoint."""
    loaded = store.load_checkpoint(student_checkpoint_path(result, role))
    if loaded is None:
        raise FileNotFoundError(f"the {role} student's checkpoint is missing; run the experiment again")
    model = create_model(loaded[0])
    model.load_state_dict(loaded[1])
    return model.eval()


ROW_NAMES = {
    "teacher": "teacher",
    "scratch": "scratch student",
    "distilled": "distilled student",
    "distilled-int8": "distilled → int8",
    "pruned": "distilled → pruned {s} (no fine-tune)",
    "pruned-ce": "distilled → pruned {s} + CE epoch",
    "pruned-kd": "distilled → pruned {s} + KD epoch",
    "pruned-kd-int8": "distilled → pruned {s} + KD epoch → int8",
}


def row_name(row_id: str, sparsity: float) -> str:
    """Display name of a row (the sparsity filled in)."""
    return ROW_NAMES[row_id].format(s=f"{sparsity:.0%}")


def compress(cfg: RunConfig, ccfg: CompressConfig | None = None, on_event: Callable[[Any], None] | None = None,
             should_stop: Callable[[], bool] | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Train (or load) the experiment of `cfg`, then prune, fine-tune, quantize, measure and export.

    Returns {"key", "config", "compress", "rows": [...], "exports": {row id: files}, "threads", ...}; one row
    per model or stage, every one measured here in this process. Cached by config like the experiment.
    """
    ccfg = (ccfg or CompressConfig()).validated()
    cfg = cfg.validated()
    started = time.perf_counter()
    dataset = load_dataset(cfg.dataset)
    key = compress_key(cfg, ccfg, dataset)
    if use_cache and (found := cached_compression(cfg, ccfg, dataset)) is not None:
        return {**found, "cached": True}

    steps = {"experiment": 0.45, "prune": 0.15, "measure": 0.35, "export": 0.05}
    done = 0.0

    def report(text: str, fraction: float, progress: Progress | None = None) -> None:
        if on_event is not None:
            on_event(StageEvent("compress", 0, progress or Progress(0, 0, 0, 0, 0, 0, 0, 0, None, 0), min(1.0, done + fraction), text))

    def experiment_event(event: Any) -> None:
        if on_event is not None:
            on_event(dataclasses.replace(event, overall=steps["experiment"] * event.overall))

    result = run_experiment(cfg, on_event=experiment_event, should_stop=should_stop)
    done = steps["experiment"]
    found = cached_teacher(cfg, dataset)
    if found is None:
        raise FileNotFoundError("the teacher's checkpoint is missing; run the experiment again")
    teacher = found[0]
    distilled, scratch = _load_student(result, "distilled"), _load_student(result, "scratch")
    architecture = cfg.student

    # pruning, then one fine-tuning epoch with KD and one with CE from the same pruned weights and data order
    student_idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    x_student, y_student = dataset.train_x[student_idx], dataset.train_y[student_idx]
    soft_targets = predict_logits(teacher, x_student)
    models: dict[str, nn.Module] = {"teacher": teacher, "scratch": scratch, "distilled": distilled}
    report(f"pruning the distilled student to {ccfg.sparsity:.0%} sparsity", 0.0)
    models["pruned"] = make_permanent(prune_magnitude(distilled, ccfg.sparsity))
    for part, (row_id, targets) in enumerate((("pruned-kd", soft_targets), ("pruned-ce", None))):
        loss = "KD" if targets is not None else "CE"

        def on_progress(p: Progress, loss: str = loss, part: int = part) -> None:
            report(f"fine-tuning the pruned student with {loss} loss, step {p.step}/{p.steps}",
                   steps["prune"] * (part + p.step / max(p.steps, 1)) / 2, p)

        models[row_id] = finetune_pruned(distilled, ccfg.sparsity, cfg, x_student, y_student, targets,
                                         epochs=ccfg.finetune_epochs, on_progress=on_progress, should_stop=should_stop)
    done += steps["prune"]

    notes: list[str] = []
    if ccfg.quantize:
        calibration = dataset.train_x[balanced_subset(dataset.train_y, ccfg.calibration_images, seed=1)]
        report(f"quantizing to int8 (calibrating on {len(calibration)} training images)", 0.0)
        try:
            models["distilled-int8"] = quantize_int8(models["distilled"], calibration, ccfg.backend, ccfg.per_channel)
            models["pruned-kd-int8"] = quantize_int8(models["pruned-kd"], calibration, ccfg.backend, ccfg.per_channel)
        except (RuntimeError, NotImplementedError, AssertionError) as exc:
            notes.append(f"int8 quantization of {architecture} failed on this PyTorch build: {exc}")
            models.pop("distilled-int8", None)

    order = [r for r in ("teacher", "scratch", "distilled", "distilled-int8", "pruned", "pruned-ce", "pruned-kd",
                         "pruned-kd-int8") if r in models]
    reference = {"teacher": teacher, **{r: distilled for r in order if r != "teacher"}}
    rows = []
    distilled_logits = None
    for i, row_id in enumerate(order):
        if should_stop is not None and should_stop():
            from kd_core.train import TrainingCancelled

            raise TrainingCancelled()
        report(f"measuring {row_name(row_id, ccfg.sparsity)} ({i + 1}/{len(order)}): latency at batch 1 and "
               f"{ccfg.throughput_batch}, memory, accuracy", steps["measure"] * i / len(order))
        source = reference[row_id]
        row = measure(models[row_id], dataset, ccfg, flops=flops_per_image(source), params=count_params(source))
        logits = row.pop("_logits")
        if row_id == "distilled":
            distilled_logits = logits
        elif distilled_logits is not None and row_id != "scratch":
            row["agreement_with_distilled"] = float((logits.argmax(1) == distilled_logits.argmax(1)).float().mean())
        rows.append({"id": row_id, "name": row_name(row_id, ccfg.sparsity),
                     "architecture": cfg.teacher if row_id == "teacher" else architecture,
                     "precision": "int8" if row_id.endswith("int8") else "float32",
                     "pipeline": row_id in PIPELINE, **row})
    done += steps["measure"]

    report("exporting weights, configs and ONNX files", 0.0)
    folder = export_folder(key)
    exports = {}
    accuracy_of = {r["id"]: r["accuracy"] for r in rows}
    for row_id in EXPORTED:
        if row_id in models:
            precision = "int8" if row_id.endswith("int8") else "float32"
            exports[row_id] = export_model(
                models[row_id], folder, f"kd-lab-{architecture}-{row_id}", architecture=architecture, precision=precision,
                backend=ccfg.backend, per_channel=ccfg.per_channel, onnx=ccfg.export_onnx,
                meta={"name": row_name(row_id, ccfg.sparsity), "classes": list(dataset.classes),
                      "dataset": cfg.dataset, "test_accuracy": accuracy_of[row_id],
                      "sparsity": ccfg.sparsity if row_id.startswith("pruned") else 0.0,
                      "distillation": {"temperature": cfg.temperature, "alpha": cfg.alpha,
                                       "alpha_means": "weight of the teacher's soft targets"}})
    out = {"key": key, "experiment_key": result["key"], "dataset": cfg.dataset, "config": cfg.as_dict(),
           "compress": ccfg.as_dict(), "rows": rows, "exports": exports, "notes": notes,
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "calibration_images": ccfg.calibration_images if ccfg.quantize else 0,
           "finetune_images": len(student_idx), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
           "total_seconds": time.perf_counter() - started}
    store.save_json(store.cache_path("compress", f"{key}.json"), out)
    return {**out, "cached": False}


def format_table(out: dict[str, Any]) -> str:
    """The rows as a plain-text table (one row per model or stage)."""
    batch = out["compress"]["throughput_batch"]
    head = (f"{'model / stage':<44} {'acc %':>6} {'params':>8} {'nonzero':>8} {'size KB':>8} {'gzip KB':>8}"
            f" {'MFLOPs':>7} {'ms/img b1 (min-max)':>21} {f'img/s b{batch} (min-max)':>24} {'mem KB':>8}")
    lines = [head]
    for r in out["rows"]:
        lat, thr = r["latency_ms"], r["throughput"]
        lines.append(
            f"{r['name']:<44} {100 * r['accuracy']:>6.2f} {r['params']:>8,} {r['nonzero_params']:>8,}"
            f" {r['size_bytes'] / 1024:>8.1f} {r['size_gzip_bytes'] / 1024:>8.1f} {r['flops'] / 1e6:>7.2f}"
            f" {lat['median_ms']:>7.3f} ({lat['min_ms']:.3f}-{lat['max_ms']:.3f})"
            f" {thr['median']:>9,.0f} ({thr['min']:,.0f}-{thr['max']:,.0f})"
            f" {r['peak_memory_bytes'] / 1024:>8.1f}")
    by_id = {r["id"]: r for r in out["rows"]}
    d = by_id["distilled"]
    if "distilled-int8" in by_id:
        q = by_id["distilled-int8"]
        lines.append(f"int8: {100 * (q['accuracy'] - d['accuracy']):+.2f} points, "
                     f"{d['size_bytes'] / q['size_bytes']:.2f}x smaller on disk, "
                     f"{d['latency_ms']['median_ms'] / _nonzero_ms(q['latency_ms']['median_ms']):.2f}x the speed at batch 1")
    if "pruned-kd" in by_id:
        kd, ce, none = by_id["pruned-kd"], by_id["pruned-ce"], by_id["pruned"]
        lines.append(f"pruned {out['compress']['sparsity']:.0%}: no fine-tune {100 * (none['accuracy'] - d['accuracy']):+.2f},"
                     f" CE epoch {100 * (ce['accuracy'] - d['accuracy']):+.2f}, KD epoch "
                     f"{100 * (kd['accuracy'] - d['accuracy']):+.2f} points vs the unpruned distilled student")
    lines.append(f"latency: median of {out['compress']['latency_runs']} timed runs after warm-up, "
                 f"{out['threads']} torch thread(s), all in one process; mem = peak inference memory at batch 1")
    lines.extend(f"note: {n}" for n in out.get("notes", []))
    return "\n".join(lines)
