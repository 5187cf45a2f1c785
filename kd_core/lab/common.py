"""What every lab experiment shares: its default config, opening, students, statistics, keys, cache and Task."""

from __future__ import annotations

import inspect
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from kd_core import schema, store
from kd_core.config import RunConfig, preset
from kd_core.data import Dataset, load_dataset
from kd_core.evaluate import predict_logits
from kd_core.experiment import balanced_subset, cached_teacher, get_teacher, train_student
from kd_core.hints import HintLoss
from kd_core.tasks import Report, ShouldStop, Task, Tracker, steps_of
from kd_core.train import Progress

LAB_VERSION = 2          # bump when an experiment's result would change for the same inputs
EXPERIMENTS = ("data-budget", "omitted-class", "sweep", "t-squared", "hints")
RUNTIME_ARGS = ("on_event", "should_stop", "use_cache", "dataset")  # how an experiment runs, not what it computes


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
# Keys and the cache


def result_key(name: str, cfg: RunConfig, dataset: Dataset, settings: dict[str, Any]) -> str:
    """Cache key of one experiment's result: its name, the lab version, config, settings and data."""
    return store.config_key({"experiment": name, "lab": LAB_VERSION, "config": cfg.as_dict(),
                             "params": settings, "data": dataset.fingerprint})


def read_result(name: str, key: str) -> dict[str, Any] | None:
    """A stored experiment result, marked as cached, or None (a file failing kd_core.schema.LAB[name] or not
    keyed `key` is reported and moved aside)."""
    found = store.load_json(store.cache_path("lab", name, f"{key}.json"), schema.with_key(schema.LAB[name], key))
    return None if found is None else {**found, "cached": True}


def save_result(name: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
    """Store an experiment result and return it marked as freshly computed."""
    store.save_json(store.cache_path("lab", name, f"{key}.json"), result)
    return {**result, "cached": False}


# ----------------------------------------------------------------------------------------------------
# One experiment as the app sees it: its parameters, key, stored result and Task


@dataclass(frozen=True)
class Spec:
    """How the lab names, keys, finds and runs one experiment.

    `settings(cfg, dataset, **params)` checks the parameters and returns them as they enter the result's
    cache key; `config` turns the caller's config into the one the experiment keys and trains on.
    """

    name: str
    label: str
    run: Callable[..., dict[str, Any]]
    settings: Callable[..., dict[str, Any]]
    config: Callable[[RunConfig], RunConfig] = RunConfig.validated

    def parameters(self, **params: Any) -> dict[str, Any]:
        """Every parameter of the experiment function from its defaults, then `params` (runtime arguments left out)."""
        defaults = {p.name: p.default for p in inspect.signature(self.run).parameters.values()
                    if p.default is not inspect.Parameter.empty and p.name not in RUNTIME_ARGS}
        return {**defaults, **params}

    def key(self, cfg: RunConfig, dataset: Dataset, params: dict[str, Any]) -> str:
        """The key the experiment's result is cached under for these settings."""
        cfg = self.config(cfg)
        return result_key(self.name, cfg, dataset, self.settings(cfg, dataset, **self.parameters(**params)))

    def cached(self, cfg: RunConfig, dataset: Dataset, params: dict[str, Any]) -> dict[str, Any] | None:
        """The stored result for exactly these settings, or None; never trains."""
        return read_result(self.name, self.key(cfg, dataset, params))

    def task(self, cfg: RunConfig, dataset: Dataset, params: dict[str, Any], label: str = "") -> Task:
        """The experiment as a Task: job key "lab-NAME-" + its key, its stored result, and the run."""
        params = self.parameters(**params)

        def work(report: Report, should_stop: ShouldStop, use_cache: bool) -> dict[str, Any]:
            """Run the experiment, reporting every Event."""
            return self.run(cfg, **params, on_event=report, should_stop=should_stop, use_cache=use_cache,
                            dataset=dataset)

        return Task(key=f"lab-{self.name}-{self.key(cfg, dataset, params)}", label=label or self.label,
                    cached=lambda: self.cached(cfg, dataset, params), work=work)


# ----------------------------------------------------------------------------------------------------
# The opening every experiment shares


def teacher_steps(cfg: RunConfig, dataset: Dataset) -> int:
    """Steps the teacher still needs (0 when it is cached)."""
    if cached_teacher(cfg, dataset) is not None:
        return 0
    n = len(dataset.train_y) if cfg.teacher_train_limit is None else min(cfg.teacher_train_limit, len(dataset.train_y))
    return steps_of(n, cfg.teacher_epochs, cfg.batch_size)


@dataclass
class Opening:
    """An experiment under way: its validated config, data, settings and clock; then its tracker and teacher."""

    spec: Spec
    cfg: RunConfig
    dataset: Dataset
    settings: dict[str, Any]        # the checked parameters, as they enter the result's cache key
    started: float
    found: dict[str, Any] | None    # the stored result (when the cache was asked and has it)
    tracker: Tracker | None = None  # set by `teacher`

    @property
    def key(self) -> str:
        """The result's cache key."""
        return result_key(self.spec.name, self.cfg, self.dataset, self.settings)

    def teacher(self, needed: torch.Tensor | None, student_steps: int, on_event: Report | None,
                should_stop: ShouldStop | None) -> tuple[nn.Module, dict[str, Any], torch.Tensor] | None:
        """Track the teacher's and `student_steps` steps; the (cached) teacher, its metadata and logits at `needed`.

        The logits are a (train images, classes) tensor filled only at `needed` (zeros elsewhere), so
        callers index it with the same training indices they train on. With `needed` None no teacher is
        wanted: only the students' steps are tracked and None is returned.
        """
        cfg, dataset = self.cfg, self.dataset
        steps = 0 if needed is None else teacher_steps(cfg, dataset)
        self.tracker = Tracker(on_event, steps + student_steps)
        if needed is None:
            return None
        teacher, meta = get_teacher(cfg, dataset, self.tracker.watch("teacher", cfg.teacher_seed, "teacher"),
                                    should_stop)
        self.tracker.trained(steps)
        needed = torch.unique(needed)
        logits = torch.zeros(len(dataset.train_y), len(dataset.classes))
        logits[needed] = predict_logits(teacher, dataset.train_x[needed], precision=cfg.compute_precision())
        return teacher, meta, logits

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """The result with its total seconds, stored and marked as freshly computed."""
        return save_result(self.spec.name, self.key,
                           {**result, "total_seconds": time.perf_counter() - self.started})


def begin(spec: Spec, cfg: RunConfig, dataset: Dataset | None, params: dict[str, Any], use_cache: bool) -> Opening:
    """Check the config, start the clock, load the data, check the parameters and look for the stored result."""
    cfg = spec.config(cfg)
    started = time.perf_counter()
    dataset = dataset or load_dataset(cfg.dataset)
    settings = spec.settings(cfg, dataset, **params)
    found = read_result(spec.name, result_key(spec.name, cfg, dataset, settings)) if use_cache else None
    return Opening(spec, cfg, dataset, settings, started, found)


# ----------------------------------------------------------------------------------------------------
# Students and statistics


def student_images(cfg: RunConfig, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(indices, images, labels, steps per student) of `cfg`'s class-balanced student training set."""
    idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    return idx, dataset.train_x[idx], dataset.train_y[idx], steps_of(len(idx), cfg.student_epochs, cfg.batch_size)


def fit_student(cfg: RunConfig, seed: int, initial: dict[str, torch.Tensor], images: torch.Tensor,
                labels: torch.Tensor, teacher_logits: torch.Tensor | None,
                on_progress: Callable[[Progress], None] | None, should_stop: ShouldStop | None,
                hint: HintLoss | None = None) -> nn.Module:
    """One student of `cfg` from `initial`: distilled when teacher logits are given (plus `hint`), else scratch."""
    model, _, _, _ = train_student(cfg, initial, images, labels, seed=seed, teacher_logits=teacher_logits,
                                   on_progress=on_progress, should_stop=should_stop, hint=hint)
    return model


def student(cfg: RunConfig, tracker: Tracker, phase: str, step: str, seed: int, initial: dict[str, torch.Tensor],
            images: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
            should_stop: ShouldStop | None, hint: HintLoss | None = None) -> nn.Module:
    """fit_student with its progress reported as `phase` of `step`, and its steps counted."""
    model = fit_student(cfg, seed, initial, images, labels, teacher_logits, tracker.watch(phase, seed, step),
                        should_stop, hint)
    tracker.trained(steps_of(len(images), cfg.student_epochs, cfg.batch_size))
    return model


def stats(values: Sequence[float]) -> dict[str, Any]:
    """Values over seeds with their mean and sample standard deviation."""
    values = [float(v) for v in values]
    return {"values": values, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def paired_noise(gain_std: float, seeds: int, discordant: float, test_images: int) -> float:
    """Noise margin of a paired gain: 2·sqrt(gain std²/seeds + d/test images), d = share of discordant test images.

    Both students of a pair share init, data and test set, so the gain's own spread counts, plus the
    test-set sampling of the images exactly one of them gets right.
    """
    return 2 * math.sqrt(gain_std ** 2 / seeds + discordant / test_images)


def noise_points(mean: float, std: float, seeds: int, test_images: int) -> float:
    """Standard error (in accuracy units) of a mean accuracy: seed spread plus test-set sampling.

    se² = std²/seeds + p(1-p)/n_test; two results are "within noise" when they differ by less than
    2·sqrt(se_a² + se_b²), roughly a 95 % interval for the difference.
    """
    return math.sqrt(std ** 2 / max(seeds, 1) + mean * (1 - mean) / max(test_images, 1))
