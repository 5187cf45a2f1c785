"""Every experiment by name, as the app asks for it: its function, filled-in parameters, result key and Task."""

from __future__ import annotations

from typing import Any, Callable

from kd_core.config import RunConfig
from kd_core.data import Dataset
from kd_core.lab import budget, grid, layer_hints, omitted, tsquared
from kd_core.lab.common import EXPERIMENTS, Spec
from kd_core.tasks import Task

SPECS: dict[str, Spec] = {spec.name: spec for spec in (budget.SPEC, omitted.SPEC, grid.SPEC, tsquared.SPEC,
                                                          layer_hints.SPEC)}
FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {name: spec.run for name, spec in SPECS.items()}


def spec(name: str) -> Spec:
    """The Spec of experiment `name`; ValueError naming the choices for an unknown one."""
    if name not in SPECS:
        raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENTS)}")
    return SPECS[name]


def parameters(name: str, **params: Any) -> dict[str, Any]:
    """Every parameter of experiment `name` from its function's defaults, then `params` (runtime arguments left out)."""
    return spec(name).parameters(**params)


def key(name: str, cfg: RunConfig, dataset: Dataset, params: dict[str, Any]) -> str:
    """The key experiment `name`'s result is cached under (the sweep, cached per student, gets a job key)."""
    return spec(name).key(cfg, dataset, params)


def task(name: str, cfg: RunConfig, dataset: Dataset, params: dict[str, Any], label: str = "") -> Task:
    """Experiment `name` on `dataset` as a Task: job key "lab-NAME-" + key(...), its stored result, its run."""
    return spec(name).task(cfg, dataset, params, label)
