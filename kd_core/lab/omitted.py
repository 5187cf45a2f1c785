"""The omitted class (Hinton et al. 2015 §3): a class the students never see, and the output-bias correction."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from kd_core.config import RunConfig
from kd_core.data import Dataset, stratified_split
from kd_core.evaluate import confusion_matrix, per_class_accuracy, predict_logits
from kd_core.experiment import balanced_subset, initial_student_weights
from kd_core.lab.common import Spec, begin, stats, student
from kd_core.tasks import Report, ShouldStop, steps_of

HELDOUT_SEED = 0         # the held-out split of the training data used to choose the omitted-class bias
EXAMPLES = 8             # omitted-class test images shown with their soft outputs
DEFAULT_BIAS_GRID = tuple(b / 4 for b in range(0, 61))  # 0, 0.25, ..., 15 added to the omitted class's logit


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


def _settings(cfg: RunConfig, dataset: Dataset, label: int, heldout_fraction: float,
              bias_grid: Sequence[float]) -> dict[str, Any]:
    """The omitted label (checked against the data), the held-out fraction and the bias grid, for the key."""
    classes = len(dataset.classes)
    if not 0 <= label < classes:
        raise ValueError(f"label {label} is out of range 0-{classes - 1} for {dataset.name}")
    return {"label": label, "heldout_fraction": heldout_fraction, "bias_grid": [float(b) for b in bias_grid]}


def omitted_class(cfg: RunConfig, label: int = 3, *, heldout_fraction: float = 0.2,
                  bias_grid: Sequence[float] = DEFAULT_BIAS_GRID,
                  on_event: Report | None = None, should_stop: ShouldStop | None = None,
                  use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """Hinton et al. 2015 §3: students whose training set has no example of `label`, and the bias correction.

    The training split is divided (stratified) into a fit part and a held-out part. Per seed, from the
    same initial weights and batch order: a distilled and a scratch student on the fit part without
    `label`, and a distilled student on the whole fit part ("distilled_all", the reference that saw every
    class). The teacher is `cfg`'s, trained on the training split as usual. The bias added to the
    omitted class's logit is chosen on the held-out part of the TRAINING split (maximising its accuracy);
    the test split is used only to report. `cfg.student_train_limit` caps the students' images.
    """
    run = begin(SPEC, cfg, dataset, {"label": label, "heldout_fraction": heldout_fraction, "bias_grid": bias_grid},
                use_cache)
    if run.found:
        return run.found
    cfg, dataset = run.cfg, run.dataset
    classes = len(dataset.classes)
    fit, held = heldout_split(dataset, heldout_fraction)
    pool_all = fit if cfg.student_train_limit is None else fit[balanced_subset(dataset.train_y[fit],
                                                                                cfg.student_train_limit)]
    pool = pool_all[dataset.train_y[pool_all] != label]
    per_seed = steps_of(len(pool), cfg.student_epochs, cfg.batch_size) * 2 + \
        steps_of(len(pool_all), cfg.student_epochs, cfg.batch_size)
    teacher, teacher_meta, train_logits = run.teacher(pool_all, cfg.seeds * per_seed, on_event, should_stop)
    test_x, test_y = dataset.test_x, dataset.test_y
    held_x, held_y = dataset.train_x[held], dataset.train_y[held]

    runs: dict[str, list[dict[str, float]]] = {"scratch": [], "distilled": [], "distilled_corrected": [],
                                                "distilled_all": []}
    biases, curve, seed0 = [], [], {}
    precision = cfg.compute_precision()
    for seed in range(cfg.seeds):
        initial = initial_student_weights(cfg, seed)
        trained = {}
        for role, idx in (("distilled", pool), ("scratch", pool), ("distilled_all", pool_all)):
            trained[role] = student(cfg, run.tracker, role, f"without {dataset.classes[label]}" if idx is pool
                                    else "every class", seed, initial, dataset.train_x[idx], dataset.train_y[idx],
                                    None if role == "scratch" else train_logits[idx], should_stop)
        # The bias is chosen here, from held-out TRAINING images only; test logits come after.
        bias, seed_curve = choose_bias(predict_logits(trained["distilled"], held_x, precision=precision), held_y, label, bias_grid)
        biases.append(bias)
        logits = {role: predict_logits(model, test_x, precision=precision) for role, model in trained.items()}
        logits["distilled_corrected"] = with_bias(logits["distilled"], label, bias)
        for role, role_logits in logits.items():
            runs[role].append({"seed": seed, **_class_scores(role_logits, test_y, label)})
        if seed == 0:
            curve, seed0 = seed_curve, logits
        run.tracker.part(f"seed {seed}", {"seed": seed, "bias": bias, **{role: runs[role][-1] for role in runs}})

    teacher_test = predict_logits(teacher, test_x, precision=precision)
    models = {}
    for role, seeds in runs.items():
        models[role] = {"runs": seeds}
        for metric in ("accuracy", "label_accuracy", "other_accuracy"):
            st = stats([r[metric] for r in seeds])
            models[role][f"{metric}_mean"], models[role][f"{metric}_std"] = st["mean"], st["std"]
    models["teacher"] = {f"{m}_mean": v for m, v in _class_scores(teacher_test, test_y, label).items()}
    example_idx = torch.nonzero(test_y == label).flatten()[:EXAMPLES]
    examples = [{"test_index": int(i),
                 **{role: {"predicted": int(seed0[role][i].argmax()), "probabilities": _probabilities(seed0[role][i])}
                    for role in ("distilled", "distilled_corrected", "scratch")},
                 "teacher": {"predicted": int(teacher_test[i].argmax()),
                             "probabilities": _probabilities(teacher_test[i])}}
                for i in example_idx.tolist()]
    return run.finish({
        "experiment": "omitted-class", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": run.key,
        "label": label, "class_name": dataset.classes[label], "classes": list(dataset.classes), "seeds": cfg.seeds,
        "student_train_images": len(pool), "student_train_images_all_classes": len(pool_all),
        "heldout_images": len(held), "heldout_label_images": int((held_y == label).sum()),
        "test_images": len(test_y), "test_label_images": int((test_y == label).sum()),
        "teacher": {"accuracy": teacher_meta["accuracy"], "cached": teacher_meta["cached"],
                    "train_images": teacher_meta.get("train_images")},
        "models": models,
        "bias": {"chosen": biases, "mean": statistics.fmean(biases), "grid": run.settings["bias_grid"],
                 "curve": curve,
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
        "examples": examples})


SPEC = Spec("omitted-class", "omitted class: students that never see one class, and the bias fix", omitted_class,
            _settings)
