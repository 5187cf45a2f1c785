"""Trained models and results the pages show: the latest comparison, the teacher's outputs, latency of a run."""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from kd_core.config import RunConfig
from kd_core.data import DatasetError
from ui.lifecycle import task_section
from ui.state import teacher_estimate
from ui.warm import wait_for_warm_up
from ui.widgets import ROLE_TITLES


def current_or_latest_result(cfg: RunConfig, dataset) -> tuple[dict[str, Any] | None, bool]:
    """(the stored comparison for these settings, True), else (the most recent run's, False), else (None, False)."""
    from kd_core.experiment import comparison_task

    result = comparison_task(cfg, dataset).cached()
    return (result, True) if result is not None else (latest_result(), False)


def latest_result() -> dict[str, Any] | None:
    """The most recently written comparison in the cache (any config), or None. Each file is checked as the
    engine reads results (kd_core.experiment.read_result): one that fails is reported, moved aside, skipped."""
    from kd_core import schema, store
    from kd_core.experiment import read_result

    def modified(path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # deleted meanwhile, or a dangling link
            return 0.0

    folder = store.cache_path("results")
    files = sorted((p for p in folder.glob("*.json") if schema.KEY_PATTERN.fullmatch(p.stem)), key=modified,
                   reverse=True) if folder.is_dir() else []
    for path in files:
        if (result := read_result(path)) is not None:
            return result
    return None


class _NoTeacher(Exception):
    """Raised inside the cached function so that "no teacher yet" is never cached."""


def teacher_outputs(cfg: RunConfig, dataset) -> dict[str, Any] | None:
    """The cached teacher's test logits (numpy), its size and metadata, computed once per teacher; None if untrained."""
    from kd_core.experiment import teacher_key

    try:
        return _teacher_outputs(teacher_key(cfg, dataset), cfg, dataset)
    except _NoTeacher:
        return None


@st.cache_resource(show_spinner="Computing the teacher's outputs on the test images...", max_entries=4)
def _teacher_outputs(key: str, _cfg: RunConfig, _dataset) -> dict[str, Any]:
    """teacher_outputs, computed once per teacher key (shared by all sessions)."""
    from kd_core.evaluate import predict_logits
    from kd_core.experiment import cached_teacher
    from kd_core.models import count_params, flops_per_image, size_bytes

    found = cached_teacher(_cfg, _dataset)
    if found is None:
        raise _NoTeacher(key)
    model, meta = found
    return {"logits": predict_logits(model, _dataset.test_x).numpy(), "labels": _dataset.test_y.numpy(),
            "meta": meta, "params": count_params(model), "size_bytes": size_bytes(model),
            "flops": flops_per_image(model)}


def teacher_or_offer(cfg: RunConfig, dataset, offer: str, running: str, draw: Callable[[Any], None] | None = None,
                     button_key: str = "train-teacher-offer") -> dict[str, Any] | None:
    """The teacher's outputs, or its training's lifecycle (task_section: `offer` and a button, or live progress);
    while the server's warm-up is still submitting its teacher, only `running` (that teacher may be this one)."""
    from kd_core.experiment import teacher_task

    outputs = teacher_outputs(cfg, dataset)
    if outputs is None and wait_for_warm_up(running.format(label="getting it ready")):
        return None
    if outputs is None and task_section(teacher_task(cfg, dataset), draw, "Train the teacher", button_key,
                                        running=running, offer=f"{offer} {teacher_estimate(cfg, dataset)}") is not None:
        outputs = teacher_outputs(cfg, dataset)  # trained just now by this server
    return outputs


def result_models(result: dict[str, Any]) -> dict[str, Any] | None:
    """The three trained models of a result (teacher from its cache, seed-0 students), or None when missing."""
    from kd_core.data import load_dataset
    from kd_core.experiment import cached_teacher, load_student

    cfg = RunConfig(**result["config"])
    try:
        teacher = cached_teacher(cfg, load_dataset(cfg.dataset))
    except DatasetError:
        return None
    if teacher is None:
        return None
    models = {"teacher": teacher[0], **{role: load_student(result, role) for role in ("distilled", "scratch")}}
    return None if any(model is None for model in models.values()) else models


@st.cache_data(show_spinner="Measuring CPU latency...", max_entries=8)
def measure_latency(result_key: str, _result: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    """Per-image CPU latency (kd_core.evaluate.latency) and weight size of each model of a result."""
    from kd_core.evaluate import latency
    from kd_core.models import size_bytes

    models = result_models(_result)
    if models is None:
        return None
    return {role: {**latency(model), "size_bytes": size_bytes(model)} for role, model in models.items()}


def efficiency_rows(result: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Rows of the efficiency table: accuracy, parameters, size, CPU latency, FLOPs; None if models are gone."""
    measured = measure_latency(result["key"], result)
    if measured is None:
        return None
    rows = []
    for role in ("teacher", "distilled", "scratch"):
        m, lat = result["models"][role], measured[role]
        rows.append({"model": ROLE_TITLES[role],
                     "architecture": result["config"]["teacher" if role == "teacher" else "student"],
                     "accuracy (%)": round(100 * m["accuracy_mean"], 1),
                     "parameters": m["params"],
                     "size (KB)": round(lat["size_bytes"] / 1024, 1),
                     "CPU latency (ms/image)": round(lat["median_ms"], 3),
                     "MFLOPs/image": round(m["flops"] / 1e6, 2)})
    return rows
