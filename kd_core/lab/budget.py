"""The data budget: distilled vs scratch students as they see fewer labelled images."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

import torch

from kd_core.config import RunConfig
from kd_core.data import Dataset
from kd_core.evaluate import predict_logits
from kd_core.experiment import balanced_subset, initial_student_weights
from kd_core.lab.common import Spec, begin, paired_noise, stats, student
from kd_core.tasks import Report, ShouldStop, steps_of

DEFAULT_BUDGETS = (0.01, 0.05, 0.2, 1.0)        # fractions (<= 1) or image counts (> 1)


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


def _settings(cfg: RunConfig, dataset: Dataset, budgets: Sequence[float], equal_steps: bool) -> dict[str, Any]:
    """The budgets as image counts, and the step rule: what decides the result besides config and data."""
    return {"counts": resolve_budgets(budgets, len(dataset.train_y)), "equal_steps": equal_steps}


def data_budget(cfg: RunConfig, budgets: Sequence[float] = DEFAULT_BUDGETS, *, equal_steps: bool = True,
                on_event: Report | None = None, should_stop: ShouldStop | None = None,
                use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """Distilled vs scratch test accuracy when the students see only `budgets` of the training set.

    The teacher is `cfg`'s (trained on all its images); for each budget and seed, both students train on
    the same class-balanced subset (drawn with the seed, so the spread includes which images are seen).
    With `equal_steps`, every budget gets the same number of optimisation steps as `cfg`'s
    `student_epochs` over `student_train_limit` images, so budgets differ only in how many distinct
    labelled images there are; otherwise every budget trains for `student_epochs` epochs.
    Result: rows (one per budget) of distilled and scratch accuracies over seeds and the gain.
    """
    run = begin(SPEC, cfg, dataset, {"budgets": budgets, "equal_steps": equal_steps}, use_cache)
    if run.found:
        return run.found
    cfg, dataset, counts = run.cfg, run.dataset, run.settings["counts"]
    n_train, n_test = len(dataset.train_y), len(dataset.test_y)
    reference_images = n_train if cfg.student_train_limit is None else min(cfg.student_train_limit, n_train)
    step_budget = steps_of(reference_images, cfg.student_epochs, cfg.batch_size)
    plans = []
    for n in counts:
        per_epoch = steps_of(n, 1, cfg.batch_size)
        epochs = max(1, round(step_budget / per_epoch)) if equal_steps else cfg.student_epochs
        plans.append((n, epochs))
    subsets = {(n, seed): balanced_subset(dataset.train_y, n, seed=seed) for n in counts for seed in range(cfg.seeds)}
    _, teacher_meta, train_logits = run.teacher(
        torch.cat(list(subsets.values())), sum(2 * cfg.seeds * steps_of(n, e, cfg.batch_size) for n, e in plans),
        on_event, should_stop)

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
                model = student(budget_cfg, run.tracker, role, step, seed, initial, dataset.train_x[idx],
                                dataset.train_y[idx], train_logits[idx] if role == "distilled" else None,
                                should_stop)
                correct[role] = predict_logits(model, dataset.test_x, precision=cfg.compute_precision()).argmax(1) == dataset.test_y
                acc[role].append(float(correct[role].float().mean()))
            discordant.append(float((correct["distilled"] != correct["scratch"]).float().mean()))
        d, s = stats(acc["distilled"]), stats(acc["scratch"])
        gains = stats([a - b for a, b in zip(acc["distilled"], acc["scratch"])])
        noise = paired_noise(gains["std"], cfg.seeds, statistics.fmean(discordant), n_test)
        row = {"images": n, "fraction": n / n_train, "per_class": n / len(dataset.classes), "epochs": epochs,
               "steps": steps_of(n, epochs, cfg.batch_size),
               "distilled": d["values"], "distilled_mean": d["mean"], "distilled_std": d["std"],
               "scratch": s["values"], "scratch_mean": s["mean"], "scratch_std": s["std"],
               "gain": gains["mean"], "gain_std": gains["std"], "gains": gains["values"],
               "noise": noise, "within_noise": abs(gains["mean"]) < noise}
        rows.append(row)
        run.tracker.part(step, row)

    return run.finish({
        "experiment": "data-budget", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": run.key,
        "budgets": list(budgets), "equal_steps": equal_steps, "train_images": n_train,
        "test_images": n_test, "seeds": cfg.seeds,
        "teacher": {"accuracy": teacher_meta["accuracy"], "cached": teacher_meta["cached"],
                    "train_images": teacher_meta.get("train_images")},
        "rows": rows,
        "noise_rule": "a gain is within noise when it is under 2·sqrt(gain std²/seeds + d/test images), "
                      "d = fraction of test images exactly one of the paired students gets right "
                      "(seed spread of the paired gain plus test-set sampling)",
        "summary": {"smallest_images": rows[0]["images"], "smallest_gain": rows[0]["gain"],
                    "largest_images": rows[-1]["images"], "largest_gain": rows[-1]["gain"]}})


SPEC = Spec("data-budget", "data budget: distilled vs scratch on fewer labelled images", data_budget, _settings)
