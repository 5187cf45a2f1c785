"""Dark-knowledge lab: experiments that show *when and why* distillation works.

Each experiment takes a RunConfig (the students' settings; T, alpha and the T² switch included),
reports progress through `on_event(LabEvent)`, polls `should_stop()`, and returns a JSON-serialisable
dict that is also cached on disk, keyed by config, parameters and data fingerprint.

- data_budget:   distilled vs scratch as the students see fewer labelled images.
- omitted_class: Hinton et al. 2015 §3: a class the student never sees, and the output-bias correction.
- sweep:         distilled accuracy over a T × alpha grid (cached per cell, so it resumes).
- t_squared:     the same distillation with and without the T² factor: gradient size and accuracy.
- hints:         layer-wise (FitNets-style) hints on top of distillation: accuracy with and without.

Every pair of students compared here shares architecture, initial weights, data order, optimizer
and step count; only the loss differs (see kd_core.experiment.train_student).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from kd_core import store
from kd_core.config import RunConfig, preset
from kd_core.data import Dataset, load_dataset, stratified_split, to_float
from kd_core.distributed import Backend, backend_from_env
from kd_core.evaluate import accuracy, confusion_matrix, per_class_accuracy, predict_logits
from kd_core.experiment import (balanced_subset, cached_teacher, get_teacher, hint_for, initial_student_weights,
                                train_student)
from kd_core.hints import HintLoss
from kd_core.losses import kd_loss
from kd_core.train import Progress

LAB_VERSION = 2          # bump when an experiment's result would change for the same inputs
HELDOUT_SEED = 0         # the held-out split of the training data used to choose the omitted-class bias
EXAMPLES = 8             # omitted-class test images shown with their soft outputs
EXPERIMENTS = ("data-budget", "omitted-class", "sweep", "t-squared", "hints")

DEFAULT_BUDGETS = (0.01, 0.05, 0.2, 1.0)        # fractions (<= 1) or image counts (> 1)
DEFAULT_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_ALPHAS = (0.25, 0.5, 0.75, 0.9, 1.0)
DEFAULT_T2_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
DEFAULT_HINT_WEIGHTS = (0.0, 1.0, 10.0)         # 0 = plain distillation, the reference
DEFAULT_BIAS_GRID = tuple(b / 4 for b in range(0, 61))  # 0, 0.25, ..., 15 added to the omitted class's logit


@dataclass(frozen=True)
class LabEvent:
    """Progress of a lab experiment: a training snapshot, or a finished part of the result."""

    experiment: str               # "data-budget", "omitted-class", "sweep", "t-squared" or "hints"
    phase: str                    # what trains: "teacher", "distilled", "scratch", ... or "part" for results
    seed: int | None
    progress: Progress | None     # the training snapshot (None for a finished-part event)
    overall: float                # 0..1 over every training step of the experiment
    step: str = ""                # which part of the experiment, e.g. "40 images" or "T=4, alpha=0.5"
    partial: dict[str, Any] | None = None  # a finished part (a budget row, a sweep cell), for live display


def default_config(name: str) -> RunConfig:
    """The config each experiment's CLI default, page and benchmark start from (the classroom preset, adjusted)."""
    base = preset("classroom")
    configs = {
        # 3 seeds: the bar asks for mean ± spread; each budget gets the classroom preset's step count.
        "data-budget": base.replace(seeds=3),
        # Hinton et al. use every training image but the omitted class, and T = 20 on MNIST.
        "omitted-class": base.replace(student_train_limit=None, student_epochs=10, temperature=20.0),
        "sweep": base,
        "t-squared": base,
        # 3 seeds: hints are compared with plain distillation as mean ± spread.
        "hints": base.replace(seeds=3),
    }
    if name not in configs:
        raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENTS)}")
    return configs[name]


# ----------------------------------------------------------------------------------------------------
# Shared book-keeping


class _Tracker:
    """Turns training snapshots into LabEvents with an overall fraction over the experiment's steps."""

    def __init__(self, experiment: str, on_event: Callable[[LabEvent], None] | None, total_steps: int) -> None:
        self.experiment, self.on_event, self.total, self.done = experiment, on_event, max(total_steps, 1), 0

    def watch(self, phase: str, seed: int | None, step: str) -> Callable[[Progress], None]:
        """A progress callback for one training run."""
        def report(p: Progress) -> None:
            if self.on_event is not None:
                overall = min(1.0, (self.done + p.step) / self.total)
                self.on_event(LabEvent(self.experiment, phase, seed, p, overall, step))
        return report

    def trained(self, steps: int) -> None:
        """Count a finished training run's steps."""
        self.done += steps

    def part(self, step: str, payload: dict[str, Any]) -> None:
        """Announce a finished part of the result."""
        if self.on_event is not None:
            self.on_event(LabEvent(self.experiment, "part", None, None, min(1.0, self.done / self.total), step,
                                   payload))


def _steps(images: int, epochs: int, batch_size: int) -> int:
    """Optimisation steps of one training run."""
    return epochs * -(-images // batch_size)


def _teacher_steps(cfg: RunConfig, dataset: Dataset) -> int:
    """Steps the teacher still needs (0 when it is cached)."""
    if cached_teacher(cfg, dataset) is not None:
        return 0
    n = len(dataset.train_y) if cfg.teacher_train_limit is None else min(cfg.teacher_train_limit, len(dataset.train_y))
    return _steps(n, cfg.teacher_epochs, cfg.batch_size)


def _teacher(cfg: RunConfig, dataset: Dataset, tracker: _Tracker, should_stop: Callable[[], bool] | None,
             steps: int, needed: torch.Tensor) -> tuple[torch.nn.Module, dict[str, Any], torch.Tensor]:
    """The (cached) teacher, its metadata and its logits on the training images `needed`, computed once.

    The logits are returned as a (train images, classes) tensor filled only at `needed` (zeros elsewhere),
    so callers index it with the same training indices they train on.
    """
    teacher, meta = get_teacher(cfg, dataset, tracker.watch("teacher", cfg.teacher_seed, "teacher"), should_stop)
    tracker.trained(steps)
    needed = torch.unique(needed)
    logits = torch.zeros(len(dataset.train_y), len(dataset.classes))
    logits[needed] = predict_logits(teacher, dataset.train_x[needed])
    return teacher, meta, logits


def _student(cfg: RunConfig, tracker: _Tracker, phase: str, step: str, seed: int, initial: dict[str, torch.Tensor],
             images: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
             should_stop: Callable[[], bool] | None, hint: HintLoss | None = None) -> torch.nn.Module:
    """Train one student of `cfg` (distilled when teacher logits are given, plus `hint` if any); count its steps."""
    model, _, _, _ = train_student(cfg, initial, images, labels, seed=seed, teacher_logits=teacher_logits,
                                   on_progress=tracker.watch(phase, seed, step), should_stop=should_stop,
                                   **({"hint": hint} if hint is not None else {}))
    tracker.trained(_steps(len(images), cfg.student_epochs, cfg.batch_size))
    return model


def _stats(values: Sequence[float]) -> dict[str, Any]:
    """Values over seeds with their mean and sample standard deviation."""
    values = [float(v) for v in values]
    return {"values": values, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _key(name: str, cfg: RunConfig, dataset: Dataset, params: dict[str, Any]) -> str:
    """Cache key of one experiment's result."""
    return store.config_key({"experiment": name, "lab": LAB_VERSION, "config": cfg.as_dict(),
                             "params": params, "data": dataset.fingerprint})


def _cached(name: str, key: str) -> dict[str, Any] | None:
    """A stored experiment result, marked as cached, or None."""
    found = store.load_json(store.cache_path("lab", name, f"{key}.json"))
    return None if found is None else {**found, "cached": True}


def _save(name: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
    """Store an experiment result and return it marked as freshly computed."""
    store.save_json(store.cache_path("lab", name, f"{key}.json"), result)
    return {**result, "cached": False}


def noise_points(mean: float, std: float, seeds: int, test_images: int) -> float:
    """Standard error (in accuracy units) of a mean accuracy: seed spread plus test-set sampling.

    se² = std²/seeds + p(1-p)/n_test; two results are "within noise" when they differ by less than
    2·sqrt(se_a² + se_b²), roughly a 95 % interval for the difference.
    """
    return math.sqrt(std ** 2 / max(seeds, 1) + mean * (1 - mean) / max(test_images, 1))


# ----------------------------------------------------------------------------------------------------
# 1. Data budget


def resolve_budgets(budgets: Sequence[float], train_images: int) -> list[int]:
    """Image counts for budgets given as fractions (<= 1) or counts (> 1), sorted, distinct, at least 10."""
    counts = set()
    for b in budgets:
        if not b > 0:
            raise ValueError(f"budget {b} must be positive (a fraction <= 1 or an image count)")
        if b > 1 and b != int(b):
            raise ValueError(f"budget {b} is above 1 but not a whole number of images")
        n = round(b * train_images) if b <= 1 else int(b)
        counts.add(max(10, min(n, train_images)))
    if not counts:
        raise ValueError("give at least one budget")
    return sorted(counts)


def data_budget(cfg: RunConfig, budgets: Sequence[float] = DEFAULT_BUDGETS, *, equal_steps: bool = True,
                on_event: Callable[[LabEvent], None] | None = None, should_stop: Callable[[], bool] | None = None,
                use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """Distilled vs scratch test accuracy when the students see only `budgets` of the training set.

    The teacher is `cfg`'s (trained on all its images); for each budget and seed, both students train on
    the same class-balanced subset (drawn with the seed, so the spread includes which images are seen).
    With `equal_steps`, every budget gets the same number of optimisation steps as `cfg`'s
    `student_epochs` over `student_train_limit` images, so budgets differ only in how many distinct
    labelled images there are; otherwise every budget trains for `student_epochs` epochs.
    Result: rows (one per budget) of distilled and scratch accuracies over seeds and the gain.
    """
    cfg = cfg.validated()
    started = time.perf_counter()
    dataset = dataset or load_dataset(cfg.dataset)
    n_train = len(dataset.train_y)
    counts = resolve_budgets(budgets, n_train)
    reference_images = n_train if cfg.student_train_limit is None else min(cfg.student_train_limit, n_train)
    step_budget = _steps(reference_images, cfg.student_epochs, cfg.batch_size)
    plans = []
    for n in counts:
        per_epoch = -(-n // cfg.batch_size)
        epochs = max(1, round(step_budget / per_epoch)) if equal_steps else cfg.student_epochs
        plans.append((n, epochs))
    key = _key("data-budget", cfg, dataset, {"counts": counts, "equal_steps": equal_steps})
    if use_cache and (found := _cached("data-budget", key)):
        return found

    teacher_steps = _teacher_steps(cfg, dataset)
    total = teacher_steps + sum(2 * cfg.seeds * _steps(n, e, cfg.batch_size) for n, e in plans)
    tracker = _Tracker("data-budget", on_event, total)
    subsets = {(n, seed): balanced_subset(dataset.train_y, n, seed=seed) for n in counts for seed in range(cfg.seeds)}
    _, teacher_meta, train_logits = _teacher(cfg, dataset, tracker, should_stop, teacher_steps,
                                          torch.cat(list(subsets.values())))
    n_test = len(dataset.test_y)

    rows = []
    for n, epochs in plans:
        budget_cfg = cfg.replace(student_epochs=epochs)
        step = f"{n} images"
        acc: dict[str, list[float]] = {"distilled": [], "scratch": []}
        discordant = []  # per seed: fraction of test images exactly one of the two students gets right
        for seed in range(cfg.seeds):
            idx = subsets[(n, seed)]
            initial = initial_student_weights(cfg, seed)
            correct = {}
            for role in ("distilled", "scratch"):
                model = _student(budget_cfg, tracker, role, step, seed, initial, dataset.train_x[idx],
                                 dataset.train_y[idx], train_logits[idx] if role == "distilled" else None,
                                 should_stop)
                correct[role] = predict_logits(model, dataset.test_x).argmax(1) == dataset.test_y
                acc[role].append(float(correct[role].float().mean()))
            discordant.append(float((correct["distilled"] != correct["scratch"]).float().mean()))
        d, s = _stats(acc["distilled"]), _stats(acc["scratch"])
        gains = _stats([a - b for a, b in zip(acc["distilled"], acc["scratch"])])
        # Paired: both students of a seed share init, data and test set, so the gain's own spread counts.
        noise = 2 * math.sqrt(gains["std"] ** 2 / cfg.seeds + statistics.fmean(discordant) / n_test)
        row = {"images": n, "fraction": n / n_train, "per_class": n / len(dataset.classes), "epochs": epochs,
               "steps": _steps(n, epochs, cfg.batch_size),
               "distilled": d["values"], "distilled_mean": d["mean"], "distilled_std": d["std"],
               "scratch": s["values"], "scratch_mean": s["mean"], "scratch_std": s["std"],
               "gain": gains["mean"], "gain_std": gains["std"], "gains": gains["values"],
               "noise": noise, "within_noise": abs(gains["mean"]) < noise}
        rows.append(row)
        tracker.part(step, row)

    result = {"experiment": "data-budget", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": key,
              "budgets": list(budgets), "equal_steps": equal_steps, "train_images": n_train,
              "test_images": n_test, "seeds": cfg.seeds,
              "teacher": {"accuracy": teacher_meta["accuracy"], "cached": teacher_meta["cached"],
                          "train_images": teacher_meta.get("train_images")},
              "rows": rows,
              "noise_rule": "a gain is within noise when it is under 2·sqrt(gain std²/seeds + d/test images), "
                            "d = fraction of test images exactly one of the paired students gets right "
                            "(seed spread of the paired gain plus test-set sampling)",
              "summary": {"smallest_images": rows[0]["images"], "smallest_gain": rows[0]["gain"],
                          "largest_images": rows[-1]["images"], "largest_gain": rows[-1]["gain"]},
              "total_seconds": time.perf_counter() - started}
    return _save("data-budget", key, result)


# ----------------------------------------------------------------------------------------------------
# 2. The omitted class


def heldout_split(dataset: Dataset, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, held-out) indices into the TRAINING split, stratified by class; the test split is not touched."""
    if not 0 < fraction < 1:
        raise ValueError("held-out fraction must be between 0 and 1")
    fit, held = stratified_split(dataset.train_y.numpy(), fraction, HELDOUT_SEED)
    return torch.from_numpy(np.sort(fit)), torch.from_numpy(np.sort(held))


def with_bias(logits: torch.Tensor, label: int, bias: float) -> torch.Tensor:
    """Logits with `bias` added to class `label` (the output-bias correction, applied after training)."""
    shifted = logits.clone()
    shifted[:, label] += bias
    return shifted


def choose_bias(heldout_logits: torch.Tensor, heldout_labels: torch.Tensor, label: int,
                grid: Sequence[float] = DEFAULT_BIAS_GRID) -> tuple[float, list[dict[str, float]]]:
    """The bias on class `label` that maximises accuracy on held-out TRAINING images (smallest on ties).

    Takes only held-out logits and labels, so it cannot see the test set. Returns the bias and the curve
    of (bias, held-out accuracy, held-out accuracy on `label`) over the grid.
    """
    curve, best, best_acc = [], float(grid[0]), -1.0
    is_label = heldout_labels == label
    for b in grid:
        predicted = with_bias(heldout_logits, label, float(b)).argmax(1)
        acc = float((predicted == heldout_labels).float().mean())
        label_acc = float((predicted[is_label] == label).float().mean()) if is_label.any() else 0.0
        curve.append({"bias": float(b), "heldout_accuracy": acc, "heldout_label_accuracy": label_acc})
        if acc > best_acc + 1e-12:
            best, best_acc = float(b), acc
    return best, curve


def _class_scores(logits: torch.Tensor, labels: torch.Tensor, label: int) -> dict[str, float]:
    """Accuracy overall, on class `label`, and on every other class."""
    correct = logits.argmax(1) == labels
    is_label = labels == label
    return {"accuracy": float(correct.float().mean()),
            "label_accuracy": float(correct[is_label].float().mean()) if is_label.any() else 0.0,
            "other_accuracy": float(correct[~is_label].float().mean()) if (~is_label).any() else 0.0}


def _probabilities(logits: torch.Tensor) -> list[float]:
    """Softmax (T = 1) of one row, rounded for JSON."""
    return [round(float(p), 5) for p in F.softmax(logits, dim=-1)]


def omitted_class(cfg: RunConfig, label: int = 3, *, heldout_fraction: float = 0.2,
                  bias_grid: Sequence[float] = DEFAULT_BIAS_GRID,
                  on_event: Callable[[LabEvent], None] | None = None, should_stop: Callable[[], bool] | None = None,
                  use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """Hinton et al. 2015 §3: students whose training set has no example of `label`, and the bias correction.

    The training split is divided (stratified) into a fit part and a held-out part. Per seed, from the
    same initial weights and batch order: a distilled and a scratch student on the fit part without
    `label`, and a distilled student on the whole fit part ("distilled_all", the reference that saw every
    class). The teacher is `cfg`'s, trained on the training split as usual. The bias added to the
    omitted class's logit is chosen on the held-out part of the TRAINING split (maximising its accuracy);
    the test split is used only to report. `cfg.student_train_limit` caps the students' images.
    """
    cfg = cfg.validated()
    started = time.perf_counter()
    dataset = dataset or load_dataset(cfg.dataset)
    classes = len(dataset.classes)
    if not 0 <= label < classes:
        raise ValueError(f"label {label} is out of range 0-{classes - 1} for {dataset.name}")
    fit, held = heldout_split(dataset, heldout_fraction)
    pool_all = fit if cfg.student_train_limit is None else fit[balanced_subset(dataset.train_y[fit],
                                                                                cfg.student_train_limit)]
    pool = pool_all[dataset.train_y[pool_all] != label]
    params = {"label": label, "heldout_fraction": heldout_fraction, "bias_grid": [float(b) for b in bias_grid]}
    key = _key("omitted-class", cfg, dataset, params)
    if use_cache and (found := _cached("omitted-class", key)):
        return found

    teacher_steps = _teacher_steps(cfg, dataset)
    per_seed = _steps(len(pool), cfg.student_epochs, cfg.batch_size) * 2 + \
        _steps(len(pool_all), cfg.student_epochs, cfg.batch_size)
    tracker = _Tracker("omitted-class", on_event, teacher_steps + cfg.seeds * per_seed)
    teacher, teacher_meta, train_logits = _teacher(cfg, dataset, tracker, should_stop, teacher_steps, pool_all)
    test_x, test_y = dataset.test_x, dataset.test_y
    held_x, held_y = dataset.train_x[held], dataset.train_y[held]

    runs: dict[str, list[dict[str, float]]] = {"scratch": [], "distilled": [], "distilled_corrected": [],
                                                "distilled_all": []}
    biases, curve, seed0 = [], [], {}
    for seed in range(cfg.seeds):
        initial = initial_student_weights(cfg, seed)
        trained = {}
        for role, idx in (("distilled", pool), ("scratch", pool), ("distilled_all", pool_all)):
            trained[role] = _student(cfg, tracker, role, f"without {dataset.classes[label]}" if idx is pool
                                     else "every class", seed, initial, dataset.train_x[idx], dataset.train_y[idx],
                                     None if role == "scratch" else train_logits[idx], should_stop)
        # The bias is chosen here, from held-out TRAINING images only; test logits come after.
        bias, seed_curve = choose_bias(predict_logits(trained["distilled"], held_x), held_y, label, bias_grid)
        biases.append(bias)
        logits = {role: predict_logits(model, test_x) for role, model in trained.items()}
        logits["distilled_corrected"] = with_bias(logits["distilled"], label, bias)
        for role, role_logits in logits.items():
            runs[role].append({"seed": seed, **_class_scores(role_logits, test_y, label)})
        if seed == 0:
            curve, seed0 = seed_curve, logits
        tracker.part(f"seed {seed}", {"seed": seed, "bias": bias,
                                      **{role: runs[role][-1] for role in runs}})

    teacher_test = predict_logits(teacher, test_x)
    models = {}
    for role, seeds in runs.items():
        models[role] = {"runs": seeds}
        for metric in ("accuracy", "label_accuracy", "other_accuracy"):
            st = _stats([r[metric] for r in seeds])
            models[role][f"{metric}_mean"], models[role][f"{metric}_std"] = st["mean"], st["std"]
    models["teacher"] = {f"{m}_mean": v for m, v in _class_scores(teacher_test, test_y, label).items()}
    example_idx = torch.nonzero(test_y == label).flatten()[:EXAMPLES]
    examples = [{"test_index": int(i),
                 **{role: {"predicted": int(seed0[role][i].argmax()), "probabilities": _probabilities(seed0[role][i])}
                    for role in ("distilled", "distilled_corrected", "scratch")},
                 "teacher": {"predicted": int(teacher_test[i].argmax()),
                             "probabilities": _probabilities(teacher_test[i])}}
                for i in example_idx.tolist()]
    result = {
        "experiment": "omitted-class", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": key,
        "label": label, "class_name": dataset.classes[label], "classes": list(dataset.classes), "seeds": cfg.seeds,
        "student_train_images": len(pool), "student_train_images_all_classes": len(pool_all),
        "heldout_images": len(held), "heldout_label_images": int((held_y == label).sum()),
        "test_images": len(test_y), "test_label_images": int((test_y == label).sum()),
        "teacher": {"accuracy": teacher_meta["accuracy"], "cached": teacher_meta["cached"],
                    "train_images": teacher_meta.get("train_images")},
        "models": models,
        "bias": {"chosen": biases, "mean": statistics.fmean(biases), "grid": params["bias_grid"], "curve": curve,
                 "chosen_on": f"held-out part of the training split ({len(held)} images, "
                              f"{int((held_y == label).sum())} of class {dataset.classes[label]}); "
                              "the test split is only used to report"},
        "other_class_gap": {  # points the omitted-class student loses on the other classes vs one that saw all
            "raw": models["distilled_all"]["other_accuracy_mean"] - models["distilled"]["other_accuracy_mean"],
            "corrected": (models["distilled_all"]["other_accuracy_mean"]
                          - models["distilled_corrected"]["other_accuracy_mean"])},
        "confusion": {role: confusion_matrix(seed0[role], test_y, classes).tolist()
                      for role in ("distilled", "distilled_corrected", "scratch", "distilled_all")},
        "per_class": {role: per_class_accuracy(seed0[role], test_y, classes)
                      for role in ("distilled", "distilled_corrected", "scratch", "distilled_all")},
        "examples": examples,
        "total_seconds": time.perf_counter() - started,
    }
    return _save("omitted-class", key, result)


# ----------------------------------------------------------------------------------------------------
# 3. The T × alpha map


def _cell_path(cfg: RunConfig, dataset: Dataset, role: str, seed: int) -> Any:
    """Where one sweep student's accuracy is cached (keyed by everything that decides it, seed included)."""
    settings = {k: v for k, v in cfg.as_dict().items() if k != "seeds"}
    if role == "scratch":  # T and alpha do not touch a scratch student
        settings = {k: v for k, v in settings.items() if k not in ("temperature", "alpha", "t_squared")}
    key = store.config_key({"experiment": "sweep-cell", "lab": LAB_VERSION, "role": role, "seed": seed,
                            "config": settings, "data": dataset.fingerprint})
    return store.cache_path("lab", "sweep-cells", f"{key}.json")


@dataclass(frozen=True)
class _SweepData:
    """What every student of a sweep shares: its training images, the teacher's logits on them, the test set."""

    images: torch.Tensor
    labels: torch.Tensor
    soft: torch.Tensor | None  # None when every distilled student is cached
    test_x: torch.Tensor
    test_y: torch.Tensor


def _sweep_student(shared: _SweepData, task: tuple[str, RunConfig, int],
                   on_progress: Callable[[Progress], None] | None, should_stop: Callable[[], bool] | None) -> float:
    """Test accuracy of one sweep student, task = (role, config, seed): scratch, or distilled with its T and alpha."""
    role, c, seed = task
    model, _, _, _ = train_student(c, initial_student_weights(c, seed), shared.images, shared.labels, seed=seed,
                                   teacher_logits=shared.soft if role == "distilled" else None,
                                   on_progress=on_progress, should_stop=should_stop)
    return accuracy(predict_logits(model, shared.test_x), shared.test_y)


def sweep(cfg: RunConfig, temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
          alphas: Sequence[float] = DEFAULT_ALPHAS, *, on_event: Callable[[LabEvent], None] | None = None,
          should_stop: Callable[[], bool] | None = None, dataset: Dataset | None = None,
          backend: Backend | None = None) -> dict[str, Any]:
    """Distilled test accuracy over temperatures × alphas (students as in `cfg`), with scratch as the reference.

    Each (T, alpha, seed) student's accuracy is cached as soon as it finishes, so an interrupted sweep
    resumes where it stopped and a finished one returns without training. A "part" event carries each
    finished cell. Cells whose mean is within noise of the best (see `noise_points`) are marked. The
    missing students train on `backend` (default: the one the environment names, see kd_core.distributed),
    which may finish them in any order; cells are announced in grid order.
    """
    cfg = cfg.validated()
    started = time.perf_counter()
    temperatures = list(dict.fromkeys(float(t) for t in temperatures))  # in the order given, without repeats
    alphas = list(dict.fromkeys(float(a) for a in alphas))
    if not temperatures or not alphas:
        raise ValueError("give at least one temperature and one alpha")
    for t in temperatures:
        cfg.replace(temperature=t)
    for a in alphas:
        cfg.replace(alpha=a)
    dataset = dataset or load_dataset(cfg.dataset)
    idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    x, y = dataset.train_x[idx], dataset.train_y[idx]
    n_test = len(dataset.test_y)
    student_steps = _steps(len(idx), cfg.student_epochs, cfg.batch_size)

    plan = [("scratch", cfg, None)] + [("distilled", cfg.replace(temperature=t, alpha=a), (t, a))
                                        for t in temperatures for a in alphas]
    names = ["scratch" if g is None else f"T={g[0]:g}, alpha={g[1]:g}" for _, _, g in plan]
    accuracies: dict[tuple[int, int], float] = {}  # (plan row, seed) -> test accuracy, cached or trained now
    for row, (role, c, _) in enumerate(plan):
        for seed in range(cfg.seeds):
            found = store.load_json(_cell_path(c, dataset, role, seed))
            if found is not None and isinstance(found.get("accuracy"), float):
                accuracies[(row, seed)] = found["accuracy"]
    was_cached = set(accuracies)
    todo = [(row, seed) for row in range(len(plan)) for seed in range(cfg.seeds) if (row, seed) not in accuracies]
    needs_teacher = any(plan[row][0] == "distilled" for row, _ in todo)
    teacher_steps = _teacher_steps(cfg, dataset) if needs_teacher else 0
    tracker = _Tracker("sweep", on_event, teacher_steps + len(todo) * student_steps)
    # the teacher's logits on the students' images, computed once (and only when a distilled student is missing)
    soft = _teacher(cfg, dataset, tracker, should_stop, teacher_steps, idx)[2][idx] if needs_teacher else None
    scratch_acc: dict[str, Any] = {}
    cells: list[dict[str, Any]] = []
    announced = 0  # plan rows whose part event is out; rows are announced in plan order once all seeds are in

    def announce() -> None:
        nonlocal announced, scratch_acc
        while announced < len(plan) and all((announced, s) in accuracies for s in range(cfg.seeds)):
            row, announced = announced, announced + 1
            st = _stats([accuracies[(row, s)] for s in range(cfg.seeds)])
            cached = all((row, s) in was_cached for s in range(cfg.seeds))
            grid_point = plan[row][2]
            if grid_point is None:
                scratch_acc = st
                tracker.part(names[row], {"role": "scratch", **st, "cached": cached})
                continue
            cell = {"temperature": grid_point[0], "alpha": grid_point[1], "accuracies": st["values"],
                    "mean": st["mean"], "std": st["std"], "gain": st["mean"] - scratch_acc["mean"], "cached": cached}
            cells.append(cell)
            tracker.part(names[row], cell)

    def finished(i: int, acc: float) -> None:
        row, seed = todo[i]
        role, c, _ = plan[row]
        store.save_json(_cell_path(c, dataset, role, seed), {"accuracy": acc, "role": role, "seed": seed,
                                                              "config": c.as_dict()})
        accuracies[(row, seed)] = acc
        tracker.trained(student_steps)
        announce()

    def watch(i: int) -> Callable[[Progress], None]:
        row, seed = todo[i]
        return tracker.watch(plan[row][0], seed, names[row])

    announce()  # rows that are cached already
    tasks = [(plan[row][0], plan[row][1], seed) for row, seed in todo]
    (backend or backend_from_env()).map(_sweep_student, _SweepData(x, y, soft, dataset.test_x, dataset.test_y),
                                        tasks, watch=watch, on_result=finished, should_stop=should_stop)
    trained = len(todo)  # every missing student trained (a cancel or failure raises before this line)

    best = max(cells, key=lambda c: c["mean"])
    best_se = noise_points(best["mean"], best["std"], cfg.seeds, n_test)
    for cell in cells:
        margin = 2 * math.hypot(best_se, noise_points(cell["mean"], cell["std"], cfg.seeds, n_test))
        cell["best"] = cell is best
        cell["within_noise"] = best["mean"] - cell["mean"] < margin
    matrix = [[next(c["mean"] for c in cells if c["temperature"] == t and c["alpha"] == a) for t in temperatures]
              for a in alphas]
    return {"experiment": "sweep", "dataset": cfg.dataset, "config": cfg.as_dict(),
            "temperatures": temperatures, "alphas": alphas, "seeds": cfg.seeds,
            "student_train_images": len(idx), "test_images": n_test,
            "scratch": {"accuracies": scratch_acc["values"], "mean": scratch_acc["mean"], "std": scratch_acc["std"]},
            "cells": cells, "matrix": matrix,  # matrix[alpha index][temperature index] = mean distilled accuracy
            "best": {"temperature": best["temperature"], "alpha": best["alpha"], "mean": best["mean"],
                     "std": best["std"], "gain": best["gain"]},
            "within_noise": [[c["temperature"], c["alpha"]] for c in cells if c["within_noise"]],
            "noise_rule": "a cell is within noise of the best when the difference is under 2·sqrt(se_best² + se_cell²),"
                          " se² = seed std²/seeds + p(1-p)/test images",
            "trained_students": trained, "cached_students": len(plan) * cfg.seeds - trained,
            "cached": trained == 0, "total_seconds": time.perf_counter() - started}


# ----------------------------------------------------------------------------------------------------
# 4. Why T²


def gradient_norms(cfg: RunConfig, initial: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
                   teacher_logits: torch.Tensor, temperature: float, t_squared: bool,
                   batches: int = 8) -> dict[str, float]:
    """Mean L2 norms, over the first `batches` batches, of the soft and hard terms' gradients at initialisation.

    The gradients are those of the unweighted terms (kd_loss's `soft` and `hard`), with respect to the
    student's logits (per example, averaged) and to all its parameters, at the initial weights.
    """
    from kd_core.models import create_model

    model = create_model(cfg.student)
    model.load_state_dict(initial)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    sums = {"soft_logits": 0.0, "soft_params": 0.0, "hard_logits": 0.0, "hard_params": 0.0}
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    used = 0
    for first in range(0, min(len(images), batches * cfg.batch_size), cfg.batch_size):
        batch_idx = order[first:first + cfg.batch_size]
        logits = model(to_float(images[batch_idx]))
        parts = kd_loss(logits, teacher_logits[batch_idx], labels[batch_idx], temperature, 1.0, t_squared)
        for name, term in (("soft", parts.soft), ("hard", parts.hard)):
            grads = torch.autograd.grad(term, [logits, *params], retain_graph=True)
            # batchmean losses: scale the logit gradient back to one example's, then average its norm
            sums[f"{name}_logits"] += float((grads[0] * len(batch_idx)).norm(dim=1).mean())
            sums[f"{name}_params"] += float(torch.sqrt(sum((g ** 2).sum() for g in grads[1:])))
        used += 1
    return {k: v / max(used, 1) for k, v in sums.items()}


def t_squared(cfg: RunConfig, temperatures: Sequence[float] = DEFAULT_T2_TEMPERATURES, *, grad_batches: int = 8,
              on_event: Callable[[LabEvent], None] | None = None, should_stop: Callable[[], bool] | None = None,
              use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """The same distillation with and without the T² factor, per temperature: soft-gradient size and accuracy.

    The soft term's gradient scales as 1/T²; multiplied by T² it stays about the same size as T grows,
    so the soft term keeps its intended weight (alpha) against the hard term. Without it, at high T the
    student effectively learns from the labels alone. The gradient norms are measured at the students'
    common initialisation (seed 0); accuracies are over `cfg.seeds` seeds, scratch as the reference.
    """
    cfg = cfg.validated()
    started = time.perf_counter()
    temperatures = sorted({float(t) for t in temperatures})
    if not temperatures:
        raise ValueError("give at least one temperature")
    for t in temperatures:
        cfg.replace(temperature=t)
    dataset = dataset or load_dataset(cfg.dataset)
    key = _key("t-squared", cfg, dataset, {"temperatures": temperatures, "grad_batches": grad_batches})
    if use_cache and (found := _cached("t-squared", key)):
        return found
    idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    x, y = dataset.train_x[idx], dataset.train_y[idx]
    student_steps = _steps(len(idx), cfg.student_epochs, cfg.batch_size)
    trainings = sum(1 if t == 1.0 else 2 for t in temperatures) + 1  # T = 1: T² = 1, both are the same run
    teacher_steps = _teacher_steps(cfg, dataset)
    tracker = _Tracker("t-squared", on_event, teacher_steps + cfg.seeds * trainings * student_steps)
    _, teacher_meta, train_logits = _teacher(cfg, dataset, tracker, should_stop, teacher_steps, idx)
    soft = train_logits[idx]

    def test_acc(model: torch.nn.Module) -> float:
        return accuracy(predict_logits(model, dataset.test_x), dataset.test_y)

    initials = [initial_student_weights(cfg, seed) for seed in range(cfg.seeds)]
    scratch = _stats([test_acc(_student(cfg, tracker, "scratch", "scratch", seed, initials[seed], x, y, None,
                                        should_stop)) for seed in range(cfg.seeds)])
    rows = []
    for t in temperatures:
        row: dict[str, Any] = {"temperature": t}
        for flag, name in ((True, "with_t2"), (False, "without_t2")):
            if t == 1.0 and not flag:
                row[name] = {**row["with_t2"], "same_as_with_t2": True}
                continue
            c = cfg.replace(temperature=t, t_squared=flag)
            grads = gradient_norms(c, initials[0], x, y, soft, t, flag, grad_batches)
            acc = _stats([test_acc(_student(c, tracker, "distilled", f"T={t:g}, {name.replace('_', ' ')}", seed,
                                            initials[seed], x, y, soft, should_stop))
                          for seed in range(cfg.seeds)])
            row[name] = {"soft_grad_logits": grads["soft_logits"], "soft_grad_params": grads["soft_params"],
                         "hard_grad_logits": grads["hard_logits"], "hard_grad_params": grads["hard_params"],
                         "soft_to_hard_params": grads["soft_params"] / max(grads["hard_params"], 1e-12),
                         "accuracies": acc["values"], "accuracy_mean": acc["mean"], "accuracy_std": acc["std"]}
        rows.append(row)
        tracker.part(f"T={t:g}", row)
    result = {"experiment": "t-squared", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": key,
              "temperatures": temperatures, "alpha": cfg.alpha, "seeds": cfg.seeds, "grad_batches": grad_batches,
              "student_train_images": len(idx),
              "teacher": {"accuracy": teacher_meta["accuracy"], "cached": teacher_meta["cached"]},
              "scratch": {"accuracies": scratch["values"], "mean": scratch["mean"], "std": scratch["std"]},
              "rows": rows,
              "gradient_note": "norms of the unweighted soft term's gradient (T²·KL or plain KL) at the students' "
                               "initial weights, w.r.t. the logits (per example) and all parameters, averaged over "
                               f"{grad_batches} batches; the hard term's is the same at every T",
              "total_seconds": time.perf_counter() - started}
    return _save("t-squared", key, result)


# ----------------------------------------------------------------------------------------------------
# 5. Layer-wise hints


def hints(cfg: RunConfig, weights: Sequence[float] = DEFAULT_HINT_WEIGHTS, *,
          on_event: Callable[[LabEvent], None] | None = None, should_stop: Callable[[], bool] | None = None,
          use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """Distilled students with a FitNets-style hint of each weight in `weights` (0 = plain KD), and scratch.

    Per seed, every student starts from the same initial weights and sees the same batches; the hinted
    ones add `weight · D(proj(student layer), teacher layer)` (kd_core.hints; D is `cfg.hint_loss`) to the
    KD loss of `cfg` (T, alpha). Weight 0 is always included: it is the reference "without hints".
    `cfg.hint_weight` is ignored. The result says which layers are matched, their shapes and the
    projection, and per weight the accuracies over seeds, the paired gain over plain KD (with a noise
    margin as in data_budget) and the hint distance at the start and end of training.
    """
    cfg = cfg.validated().replace(hint_weight=0.0)
    started = time.perf_counter()
    weights = sorted({0.0, *(float(w) for w in weights)})
    for w in weights:
        cfg.replace(hint_weight=w)
    dataset = dataset or load_dataset(cfg.dataset)
    key = _key("hints", cfg, dataset, {"weights": weights})
    if use_cache and (found := _cached("hints", key)):
        return found
    idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    x, y = dataset.train_x[idx], dataset.train_y[idx]
    n_test = len(dataset.test_y)
    student_steps = _steps(len(idx), cfg.student_epochs, cfg.batch_size)
    teacher_steps = _teacher_steps(cfg, dataset)
    tracker = _Tracker("hints", on_event, teacher_steps + cfg.seeds * (len(weights) + 1) * student_steps)
    teacher, teacher_meta, train_logits = _teacher(cfg, dataset, tracker, should_stop, teacher_steps, idx)
    soft = train_logits[idx]
    make_hint, matched = hint_for(cfg, teacher, x)  # the teacher's features on x, computed once

    def correct(model: torch.nn.Module) -> torch.Tensor:
        return predict_logits(model, dataset.test_x).argmax(1) == dataset.test_y

    initials = [initial_student_weights(cfg, seed) for seed in range(cfg.seeds)]
    scratch = [correct(_student(cfg, tracker, "scratch", "scratch", seed, initials[seed], x, y, None, should_stop))
               for seed in range(cfg.seeds)]
    scratch_acc = _stats([float(c.float().mean()) for c in scratch])
    tracker.part("scratch", {"role": "scratch", **scratch_acc})
    rows, plain = [], []
    for w in weights:
        step = "plain KD" if w == 0 else f"hint weight {w:g}"
        c = cfg.replace(hint_weight=w)
        results, distances = [], []  # per seed: which test images are right; hint distance summaries
        for seed in range(cfg.seeds):
            hint = make_hint(seed, w) if w > 0 else None
            results.append(correct(_student(c, tracker, "distilled" if w == 0 else "hinted", step, seed,
                                            initials[seed], x, y, soft, should_stop, hint)))
            if hint is not None:
                distances.append(hint.summary())
        if w == 0:
            plain = results
        acc = _stats([float(r.float().mean()) for r in results])
        gains = _stats([float(r.float().mean() - p.float().mean()) for r, p in zip(results, plain)])
        discordant = statistics.fmean(float((r != p).float().mean()) for r, p in zip(results, plain))
        noise = 2 * math.sqrt(gains["std"] ** 2 / cfg.seeds + discordant / n_test)
        row = {"weight": w, "accuracies": acc["values"], "accuracy_mean": acc["mean"], "accuracy_std": acc["std"],
               "gain_vs_plain_kd": gains["mean"], "gain_vs_plain_kd_std": gains["std"], "noise": noise,
               "within_noise": w == 0 or abs(gains["mean"]) < noise,
               "gain_vs_scratch": acc["mean"] - scratch_acc["mean"],
               **{name: statistics.fmean(d[name] for d in distances) if distances else None
                  for name in ("hint_distance_first", "hint_distance_last")}}
        rows.append(row)
        tracker.part(step, row)

    hinted = [r for r in rows if r["weight"] > 0]
    best = max(hinted, key=lambda r: r["accuracy_mean"]) if hinted else rows[0]
    result = {"experiment": "hints", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": key,
              "weights": weights, "hint_loss": cfg.hint_loss, "seeds": cfg.seeds, "student_train_images": len(idx),
              "test_images": n_test,
              "teacher": {"accuracy": teacher_meta["accuracy"], "cached": teacher_meta["cached"]},
              "matched": {k: v for k, v in matched.items() if k != "weight"},
              "scratch": {"accuracies": scratch_acc["values"], "mean": scratch_acc["mean"], "std": scratch_acc["std"]},
              "rows": rows,
              "summary": {"plain_kd_mean": rows[0]["accuracy_mean"], "best_weight": best["weight"],
                          "best_mean": best["accuracy_mean"], "best_gain_vs_plain_kd": best["gain_vs_plain_kd"],
                          "best_within_noise": best["within_noise"]},
              "noise_rule": "a hinted student's gain over plain KD is within noise when it is under "
                            "2·sqrt(gain std²/seeds + d/test images), d = fraction of test images exactly one "
                            "of the paired students gets right",
              "hint_distance_note": "the unweighted hint distance D at the first step and over the last tenth of "
                                    "training (mean over seeds)",
              "total_seconds": time.perf_counter() - started}
    return _save("hints", key, result)
