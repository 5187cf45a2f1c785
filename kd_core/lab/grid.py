"""The T × alpha sweep: distilled accuracy over a grid, cached per student, so an interrupted sweep resumes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from kd_core import schema, store
from kd_core.config import RunConfig
from kd_core.data import Dataset
from kd_core.distributed import Backend, backend_from_env
from kd_core.evaluate import accuracy, predict_logits
from kd_core.experiment import initial_student_weights
from kd_core.lab.common import LAB_VERSION, Spec, begin, fit_student, noise_points, stats, student_images
from kd_core.tasks import Report, ShouldStop
from kd_core.train import Progress

DEFAULT_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_ALPHAS = (0.25, 0.5, 0.75, 0.9, 1.0)


def _cell_path(cfg: RunConfig, dataset: Dataset, role: str, seed: int) -> Any:
    """Where one sweep student's accuracy is cached (keyed by everything that decides it, seed included)."""
    settings = {k: v for k, v in cfg.as_dict().items() if k != "seeds"}
    if role == "scratch":  # T and alpha do not touch a scratch student
        settings = {k: v for k, v in settings.items() if k not in ("temperature", "alpha", "t_squared")}
    key = store.config_key({"experiment": "sweep-cell", "lab": LAB_VERSION, "role": role, "seed": seed,
                            "config": settings, "data": dataset.fingerprint})
    return store.cache_path("lab", "sweep-cells", f"{key}.json")


def _cached_cell(cfg: RunConfig, dataset: Dataset, role: str, seed: int) -> float | None:
    """One sweep student's stored test accuracy, or None (a cell failing kd_core.schema.SWEEP_CELL, or one for
    another role or seed, is reported and moved aside)."""
    def this_cell(cell: dict[str, Any], where: str) -> None:
        schema.SWEEP_CELL(cell, where)
        schema.require(cell["role"] == role and cell["seed"] == seed, where, "not this cell's role and seed")

    found = store.load_json(_cell_path(cfg, dataset, role, seed), this_cell)
    return None if found is None else float(found["accuracy"])


def _plan(cfg: RunConfig, temperatures: Sequence[float],
          alphas: Sequence[float]) -> list[tuple[str, RunConfig, tuple[float, float] | None]]:
    """The sweep's rows: (role, config, (T, alpha) or None): scratch first, then every grid point."""
    return [("scratch", cfg, None)] + [("distilled", cfg.replace(temperature=t, alpha=a), (t, a))
                                       for t in temperatures for a in alphas]


def _settings(cfg: RunConfig, dataset: Dataset, temperatures: Sequence[float],
              alphas: Sequence[float]) -> dict[str, Any]:
    """The grid's temperatures and alphas as floats, in the order given, without repeats; each checked."""
    temperatures = list(dict.fromkeys(float(t) for t in temperatures))
    alphas = list(dict.fromkeys(float(a) for a in alphas))
    if not temperatures or not alphas:
        raise ValueError("give at least one temperature and one alpha")
    for t in temperatures:
        cfg.replace(temperature=t)
    for a in alphas:
        cfg.replace(alpha=a)
    return {"temperatures": temperatures, "alphas": alphas}


@dataclass(frozen=True)
class _SweepData:
    """What every student of a sweep shares: its training images, the teacher's logits on them, the test set."""

    images: torch.Tensor
    labels: torch.Tensor
    soft: torch.Tensor | None  # None when every distilled student is cached
    test_x: torch.Tensor
    test_y: torch.Tensor


def _sweep_student(shared: _SweepData, task: tuple[str, RunConfig, int],
                   on_progress: Callable[[Progress], None] | None, should_stop: ShouldStop | None) -> float:
    """Test accuracy of one sweep student, task = (role, config, seed): scratch, or distilled with its T and alpha."""
    role, c, seed = task
    model = fit_student(c, seed, initial_student_weights(c, seed), shared.images, shared.labels,
                        shared.soft if role == "distilled" else None, on_progress, should_stop)
    return accuracy(predict_logits(model, shared.test_x, precision=c.compute_precision()), shared.test_y)


def sweep(cfg: RunConfig, temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
          alphas: Sequence[float] = DEFAULT_ALPHAS, *, on_event: Report | None = None,
          should_stop: ShouldStop | None = None, use_cache: bool = True, dataset: Dataset | None = None,
          backend: Backend | None = None) -> dict[str, Any]:
    """Distilled test accuracy over temperatures × alphas (students as in `cfg`), with scratch as the reference.

    Each (T, alpha, seed) student's accuracy is cached as soon as it finishes, so an interrupted sweep
    resumes where it stopped and a finished one returns without training (`use_cache` False trains
    every student again and replaces the stored ones). A "part" event carries each finished cell.
    Cells whose mean is within noise of the best (see `noise_points`) are marked. The missing students
    train on `backend` (default: the one the environment names, see kd_core.distributed), which may
    finish them in any order; cells are announced in grid order.
    """
    # No whole result is stored: its students are, one by one, below.
    run = begin(SPEC, cfg, dataset, {"temperatures": temperatures, "alphas": alphas}, use_cache=False)
    cfg, dataset = run.cfg, run.dataset
    temperatures, alphas = run.settings["temperatures"], run.settings["alphas"]
    idx, x, y, student_steps = student_images(cfg, dataset)
    n_test = len(dataset.test_y)

    plan = _plan(cfg, temperatures, alphas)
    names = ["scratch" if g is None else f"T={g[0]:g}, alpha={g[1]:g}" for _, _, g in plan]
    accuracies: dict[tuple[int, int], float] = {}  # (plan row, seed) -> test accuracy, cached or trained now
    for row, (role, c, _) in enumerate(plan):
        for seed in range(cfg.seeds):
            if use_cache and (found := _cached_cell(c, dataset, role, seed)) is not None:
                accuracies[(row, seed)] = found
    was_cached = set(accuracies)
    todo = [(row, seed) for row in range(len(plan)) for seed in range(cfg.seeds) if (row, seed) not in accuracies]
    needs_teacher = any(plan[row][0] == "distilled" for row, _ in todo)
    # the teacher's logits on the students' images, computed once (and only when a distilled student is missing)
    taught = run.teacher(idx if needs_teacher else None, len(todo) * student_steps, on_event, should_stop)
    soft = taught[2][idx] if taught is not None else None
    tracker = run.tracker
    scratch_acc: dict[str, Any] = {}
    cells: list[dict[str, Any]] = []
    announced = 0  # plan rows whose part event is out; rows are announced in plan order once all seeds are in

    def announce() -> None:
        """Announce, in plan order, every row whose seeds are all in."""
        nonlocal announced, scratch_acc
        while announced < len(plan) and all((announced, s) in accuracies for s in range(cfg.seeds)):
            row, announced = announced, announced + 1
            st = stats([accuracies[(row, s)] for s in range(cfg.seeds)])
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
        """Store student `i`'s accuracy, count its steps and announce what is complete."""
        row, seed = todo[i]
        role, c, _ = plan[row]
        store.save_json(_cell_path(c, dataset, role, seed), {"accuracy": acc, "role": role, "seed": seed,
                                                              "config": c.as_dict()})
        accuracies[(row, seed)] = acc
        tracker.trained(student_steps, watchers.get(i))
        announce()

    watchers: dict[int, Callable[[Progress], None]] = {}  # students may train side by side: each ends its own

    def watch(i: int) -> Callable[[Progress], None]:
        """Student `i`'s progress callback."""
        row, seed = todo[i]
        return watchers.setdefault(i, tracker.watch(plan[row][0], seed, names[row]))

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
            "cached": trained == 0, "total_seconds": time.perf_counter() - run.started}


@dataclass(frozen=True)
class _SweepSpec(Spec):
    """The sweep's Spec: no whole result is stored, so its job key is its own and it is assembled from its cells."""

    def key(self, cfg: RunConfig, dataset: Dataset, params: dict[str, Any]) -> str:
        """The sweep's job key: its config, grid (as given) and data."""
        params = self.parameters(**params)
        return store.config_key({"experiment": "sweep", "lab": LAB_VERSION, "config": cfg.validated().as_dict(),
                                 "temperatures": [float(t) for t in params["temperatures"]],
                                 "alphas": [float(a) for a in params["alphas"]], "data": dataset.fingerprint})

    def cached(self, cfg: RunConfig, dataset: Dataset, params: dict[str, Any]) -> dict[str, Any] | None:
        """The sweep assembled from its cells (no training) when every cell is stored, else None."""
        params = self.parameters(**params)
        cfg = cfg.validated()
        settings = _settings(cfg, dataset, params["temperatures"], params["alphas"])
        for role, c, _ in _plan(cfg, settings["temperatures"], settings["alphas"]):
            if any(_cached_cell(c, dataset, role, seed) is None for seed in range(cfg.seeds)):
                return None
        return self.run(cfg, dataset=dataset, **params)


SPEC = _SweepSpec("sweep", "T × alpha sweep of distilled students", sweep, _settings)
