"""The compression pipeline: distil -> prune (+KD epoch) -> quantize, every model measured and the result exported.

Each model becomes one row: parameters, size on disk, FLOPs, CPU latency at batch 1 and throughput at a
large batch (medians after warm-up, with min/max), peak inference memory, test accuracy. All rows are
measured in the same process, one after the other, so their ratios are fair. Results are cached by config
like the experiment they start from.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from kd_core import paths, schema, store
from kd_core.compress.exporting import export_model
from kd_core.compress.measure import measure_row
from kd_core.compress.prune import finetune_pruned, make_permanent, prune_magnitude
from kd_core.compress.quantize import quantize_int8
from kd_core.config import RunConfig, checked_replace, require
from kd_core.data import Dataset, load_dataset
from kd_core.evaluate import predict_logits
from kd_core.experiment import balanced_subset, cached_teacher, load_student, run_experiment
from kd_core.models import count_params, flops_per_image
from kd_core.roles import COMPRESS_NAMES, STUDENTS
from kd_core.tasks import Event, Task, Tracker, scaled
from kd_core.train import Progress, TrainingCancelled

PIPELINE = ("distilled", "pruned-kd", "pruned-kd-int8")   # distil -> prune (+KD epoch) -> quantize
EXPORTED = ("distilled", "distilled-int8", "pruned-kd", "pruned-kd-int8")
ROW_ORDER = ("teacher", "scratch", "distilled", "distilled-int8", "pruned", "pruned-ce", "pruned-kd", "pruned-kd-int8")
SHARES = {"experiment": 0.45, "prune": 0.15, "measure": 0.35, "export": 0.05}   # of a run's overall progress


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


def compress_key(cfg: RunConfig, ccfg: CompressConfig, dataset: Dataset) -> str:
    """Cache key of a compression run: the experiment's config and data, plus the compression settings."""
    return store.config_key({"kind": "compress", "run": cfg.as_dict(), "data": dataset.fingerprint,
                             "compress": ccfg.as_dict()})


def cached_compression(cfg: RunConfig, ccfg: CompressConfig, dataset: Dataset | None = None) -> dict[str, Any] | None:
    """The stored compression result for these settings, or None: a result failing kd_core.schema.COMPRESSION
    is reported and moved aside; one whose export files are gone (or not plain files inside the cache) reads
    as absent, so it is recomputed."""
    dataset = dataset or load_dataset(cfg.dataset)
    key = compress_key(cfg, ccfg, dataset)
    path = store.cache_path("compress", f"{key}.json")
    found = store.load_json(path, schema.with_key(schema.COMPRESSION, key))
    if found is None:
        return None
    try:
        files = export_paths(key, found["exports"])
    except ValueError as exc:  # a name that is not a plain file name inside the export folder
        store.reject(path, str(exc))
        return None
    if (missing := store.missing_file(files)) is not None:
        store.report_missing(path, missing)
        return None
    return found


def export_folder(key: str) -> Path:
    """Where a compression run's exported files live."""
    return store.cache_path("compress", key)


def export_file(key: str, name: str) -> Path:
    """The exported file `name` of compression run `key`: ValueError unless `name` is one plain file name
    and the path, symlinks followed, stays inside the cache folder (names come from a stored result)."""
    path = paths.inside(export_folder(key), paths.plain_name(name))
    if not paths.resolves_inside(path, paths.cache_dir()):
        raise ValueError(f"refused file name {name[:80]!r}: a symlink leads outside the cache folder")
    return path


def export_paths(key: str, exports: dict[str, dict[str, str]]) -> list[Path]:
    """Every file a result's `exports` names, through export_file (ValueError for the first bad name)."""
    return [export_file(key, name) for files in exports.values() for name in files.values()]


def row_name(row_id: str, sparsity: float) -> str:
    """Display name of a row (the sparsity filled in)."""
    return COMPRESS_NAMES[row_id].format(s=f"{sparsity:.0%}")


def _trained_models(cfg: RunConfig, dataset: Dataset, result: dict[str, Any]) -> dict[str, nn.Module]:
    """The experiment's teacher and seed-0 distilled and scratch students, from their checkpoints."""
    found = cached_teacher(cfg, dataset)
    if found is None:
        raise FileNotFoundError("the teacher's checkpoint is missing; run the experiment again")
    models = {"teacher": found[0]}
    for role in STUDENTS:
        student = load_student(result, role)
        if student is None:
            raise FileNotFoundError(f"the {role} student's checkpoint is missing; run the experiment again")
        models[role] = student
    return models


def _pruned_models(distilled: nn.Module, cfg: RunConfig, ccfg: CompressConfig, images: torch.Tensor,
                   labels: torch.Tensor, soft_targets: torch.Tensor, tracker: Tracker,
                   should_stop: Callable[[], bool] | None) -> dict[str, nn.Module]:
    """The distilled student pruned, then fine-tuned once with KD and once with CE (same weights, same data order)."""
    tracker.stage(f"pruning the distilled student to {ccfg.sparsity:.0%} sparsity")
    models = {"pruned": make_permanent(prune_magnitude(distilled, ccfg.sparsity))}
    for part, (row_id, targets) in enumerate((("pruned-kd", soft_targets), ("pruned-ce", None))):
        loss = "KD" if targets is not None else "CE"

        def on_progress(p: Progress, loss: str = loss, part: int = part) -> None:
            """Report one fine-tuning step as a stage in words, with its training snapshot."""
            tracker.stage(f"fine-tuning the pruned student with {loss} loss, step {p.step}/{p.steps}",
                          SHARES["prune"] * (part + p.step / max(p.steps, 1)) / 2, p)

        models[row_id] = finetune_pruned(distilled, ccfg.sparsity, cfg, images, labels, targets,
                                         epochs=ccfg.finetune_epochs, on_progress=on_progress, should_stop=should_stop)
    return models


def _add_int8(models: dict[str, nn.Module], dataset: Dataset, ccfg: CompressConfig, architecture: str,
              tracker: Tracker) -> list[str]:
    """Add the int8 rows to `models`; returns notes (a build whose int8 kernels fail leaves them out)."""
    calibration = dataset.train_x[balanced_subset(dataset.train_y, ccfg.calibration_images, seed=1)]
    tracker.stage(f"quantizing to int8 (calibrating on {len(calibration)} training images)")
    try:
        models["distilled-int8"] = quantize_int8(models["distilled"], calibration, ccfg.backend, ccfg.per_channel)
        models["pruned-kd-int8"] = quantize_int8(models["pruned-kd"], calibration, ccfg.backend, ccfg.per_channel)
    except (RuntimeError, NotImplementedError, AssertionError) as exc:
        models.pop("distilled-int8", None)
        return [f"int8 quantization of {architecture} failed on this PyTorch build: {exc}"]
    return []


def _measured_rows(models: dict[str, nn.Module], dataset: Dataset, cfg: RunConfig, ccfg: CompressConfig,
                   tracker: Tracker, should_stop: Callable[[], bool] | None) -> list[dict[str, Any]]:
    """One measured row per model, in ROW_ORDER; FLOPs and parameters from each row's float source."""
    order = [r for r in ROW_ORDER if r in models]
    reference = {"teacher": models["teacher"], **{r: models["distilled"] for r in order if r != "teacher"}}
    rows = []
    distilled_logits = None
    for i, row_id in enumerate(order):
        if should_stop is not None and should_stop():
            raise TrainingCancelled()
        tracker.stage(f"measuring {row_name(row_id, ccfg.sparsity)} ({i + 1}/{len(order)}): latency at batch 1 and "
                      f"{ccfg.throughput_batch}, memory, accuracy", SHARES["measure"] * i / len(order))
        source = reference[row_id]
        row = measure_row(models[row_id], dataset, flops=flops_per_image(source), params=count_params(source),
                          runs=ccfg.latency_runs, batch=ccfg.throughput_batch)
        logits = row.pop("_logits")
        if row_id == "distilled":
            distilled_logits = logits
        elif distilled_logits is not None and row_id != "scratch":
            row["agreement_with_distilled"] = float((logits.argmax(1) == distilled_logits.argmax(1)).float().mean())
        rows.append({"id": row_id, "name": row_name(row_id, ccfg.sparsity),
                     "architecture": cfg.teacher if row_id == "teacher" else cfg.student,
                     "precision": "int8" if row_id.endswith("int8") else "float32",
                     "pipeline": row_id in PIPELINE, **row})
    return rows


def _exported(models: dict[str, nn.Module], rows: list[dict[str, Any]], folder: Path, cfg: RunConfig,
              ccfg: CompressConfig, dataset: Dataset) -> dict[str, dict[str, str]]:
    """Export the EXPORTED models into `folder`; returns {row id: its files}."""
    exports = {}
    accuracy_of = {r["id"]: r["accuracy"] for r in rows}
    for row_id in EXPORTED:
        if row_id in models:
            precision = "int8" if row_id.endswith("int8") else "float32"
            exports[row_id] = export_model(
                models[row_id], folder, f"kd-lab-{cfg.student}-{row_id}", architecture=cfg.student,
                precision=precision, backend=ccfg.backend, per_channel=ccfg.per_channel, onnx=ccfg.export_onnx,
                meta={"name": row_name(row_id, ccfg.sparsity), "classes": list(dataset.classes),
                      "dataset": cfg.dataset, "test_accuracy": accuracy_of[row_id],
                      "sparsity": ccfg.sparsity if row_id.startswith("pruned") else 0.0,
                      "distillation": {"temperature": cfg.temperature, "alpha": cfg.alpha,
                                       "alpha_means": "weight of the teacher's soft targets"}})
    return exports


def compress(cfg: RunConfig, ccfg: CompressConfig | None = None, on_event: Callable[[Event], None] | None = None,
             should_stop: Callable[[], bool] | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Train (or load) the experiment of `cfg`, then prune, fine-tune, quantize, measure and export.

    Returns {"key", "config", "compress", "rows": [...], "exports": {row id: files}, "threads", ...}; one row
    per model or stage, every one measured here in this process. Cached by config like the experiment.
    Progress goes to `on_event` as kd_core.tasks Events: the experiment's own, then stages in words.
    """
    ccfg = (ccfg or CompressConfig()).validated()
    cfg = cfg.validated()
    started = time.perf_counter()
    dataset = load_dataset(cfg.dataset)
    key = compress_key(cfg, ccfg, dataset)
    if use_cache and (found := cached_compression(cfg, ccfg, dataset)) is not None:
        return {**found, "cached": True}

    tracker = Tracker(on_event, 1.0)   # units are fractions of the whole run (SHARES)
    result = run_experiment(cfg, on_event=scaled(on_event, 0.0, SHARES["experiment"]), should_stop=should_stop)
    tracker.trained(SHARES["experiment"])
    models = _trained_models(cfg, dataset, result)

    student_idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    x_student, y_student = dataset.train_x[student_idx], dataset.train_y[student_idx]
    soft_targets = predict_logits(models["teacher"], x_student)
    models.update(_pruned_models(models["distilled"], cfg, ccfg, x_student, y_student, soft_targets, tracker,
                                 should_stop))
    tracker.trained(SHARES["prune"])
    notes = _add_int8(models, dataset, ccfg, cfg.student, tracker) if ccfg.quantize else []

    rows = _measured_rows(models, dataset, cfg, ccfg, tracker, should_stop)
    tracker.trained(SHARES["measure"])
    tracker.stage("exporting weights, configs and ONNX files")
    exports = _exported(models, rows, export_folder(key), cfg, ccfg, dataset)
    out = {"key": key, "experiment_key": result["key"], "dataset": cfg.dataset, "config": cfg.as_dict(),
           "compress": ccfg.as_dict(), "rows": rows, "exports": exports, "notes": notes,
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "calibration_images": ccfg.calibration_images if ccfg.quantize else 0,
           "finetune_images": len(student_idx), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
           "total_seconds": time.perf_counter() - started}
    if store.missing_file(export_paths(key, exports)) is None:  # a result is stored only after its files
        store.save_json(store.cache_path("compress", f"{key}.json"), out)
    return {**out, "cached": False}


def task(cfg: RunConfig, ccfg: CompressConfig, dataset: Dataset) -> Task:
    """The compression run of `cfg` and `ccfg` as a Task (job key "compress-" + its cache key)."""
    cfg, ccfg = cfg.validated(), ccfg.validated()

    def cached() -> dict[str, Any] | None:
        """The stored result marked as cached, or None."""
        found = cached_compression(cfg, ccfg, dataset)
        return None if found is None else {**found, "cached": True}

    return Task(key="compress-" + compress_key(cfg, ccfg, dataset),
                label=f"compression at {ccfg.sparsity:.0%} sparsity{', int8' if ccfg.quantize else ''}",
                cached=cached,
                work=lambda report, should_stop, use_cache: compress(
                    cfg, ccfg, on_event=report, should_stop=should_stop, use_cache=use_cache))
