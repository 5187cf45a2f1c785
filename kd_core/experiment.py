"""The whole experiment: a (cached) teacher, then per seed a distilled and a scratch student from the same start."""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from kd_core import schema, store
from kd_core.config import RunConfig
from kd_core.data import Dataset, load_dataset
from kd_core.distributed import Backend, backend_from_env
from kd_core.estimate import OUTPUTS, comparison_plan
from kd_core.evaluate import accuracy, agreement, confusion_matrix, per_class_accuracy, predict_logits
from kd_core.hints import HintLoss, fits_in_memory, hint_pair, teacher_targets
from kd_core.models import count_params, create_model, flops_per_image
from kd_core.tasks import Event, Task, Tracker
from kd_core.train import History, Progress, train

CURVE_TEST_IMAGES = 1000  # per-epoch test curves use the first this many test images; final numbers use all


def curve_set(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test subset every per-epoch test curve is measured on: the first CURVE_TEST_IMAGES test images."""
    return dataset.test_x[:CURVE_TEST_IMAGES], dataset.test_y[:CURVE_TEST_IMAGES]


def balanced_subset(labels: torch.Tensor, limit: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of `limit` examples taking classes in turn (all indices, shuffled, when limit is None or too big)."""
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    if limit is None or limit >= len(y):
        return torch.from_numpy(rng.permutation(len(y)))
    per_class = [list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)]
    picked: list[int] = []
    while len(picked) < limit:
        for members in per_class:
            if members and len(picked) < limit:
                picked.append(int(members.pop()))
    return torch.tensor(sorted(picked))


def teacher_key(cfg: RunConfig, dataset: Dataset) -> str:
    """Cache key of this config's teacher (its settings and the data)."""
    return store.config_key({**cfg.teacher_dict(), "data": dataset.fingerprint})


def _teacher_path(cfg: RunConfig, dataset: Dataset) -> Any:
    """Checkpoint path of this config's teacher."""
    return store.cache_path("teachers", f"{teacher_key(cfg, dataset)}.pt")


def load_model(path: Any, architecture: str | None = None,
               meta_check: schema.Check | None = None) -> tuple[nn.Module, dict[str, Any]] | None:
    """(model in eval mode, metadata) from the checkpoint at `path`, or None when it is missing, damaged,
    not `architecture` (when given) or its metadata fails `meta_check` (kd_core.schema)."""
    loaded = store.load_checkpoint(path, meta_check)
    if loaded is None or (architecture is not None and loaded[0] != architecture):
        return None
    try:
        model = create_model(loaded[0])
        model.load_state_dict(loaded[1])
    except (RuntimeError, ValueError) as exc:
        store.log.warning("checkpoint %s does not fit %s (%s); it is ignored", path, loaded[0], exc)
        return None
    return model.eval(), loaded[2]


def cached_teacher(cfg: RunConfig, dataset: Dataset) -> tuple[nn.Module, dict[str, Any]] | None:
    """The trained teacher for `cfg` and its metadata from the cache, or None."""
    return load_model(_teacher_path(cfg, dataset), cfg.teacher, schema.TEACHER_META)


def teacher_is_cached(cfg: RunConfig, dataset: Dataset) -> bool:
    """Whether `cfg`'s teacher is in the cache and loads: checked as cached_teacher does, once per version of the
    file (its inode, size and modification time), since a run button's time estimate asks on every page run."""
    path = _teacher_path(cfg, dataset)
    if store.refused_link(path):
        return False
    try:
        found = path.stat()
    except OSError:
        return False
    return _teacher_loads(str(path), cfg.teacher, found.st_ino, found.st_size, found.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _teacher_loads(path: str, architecture: str, inode: int, size: int, mtime_ns: int) -> bool:
    """Whether the teacher checkpoint at `path` loads as `architecture`, for one version of the file."""
    return load_model(Path(path), architecture, schema.TEACHER_META) is not None


def get_teacher(cfg: RunConfig, dataset: Dataset, on_progress: Callable[[Progress], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher for `cfg`: from the cache, or trained now and cached; metadata includes accuracy and seconds."""
    found = cached_teacher(cfg, dataset)
    if found is not None:
        return found[0], {**found[1], "cached": True}
    return train_teacher(cfg, dataset, on_progress, should_stop)[:2]


def train_teacher(cfg: RunConfig, dataset: Dataset, on_progress: Callable[[Progress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> tuple[nn.Module, dict[str, Any], torch.Tensor]:
    """Train `cfg`'s teacher now and cache it: (model, metadata, its logits on the whole test set).

    Its curve is measured on `curve_set`; its accuracy on the whole test set, from the logits returned.
    """
    model = create_model(cfg.teacher, seed=cfg.teacher_seed)
    idx = balanced_subset(dataset.train_y, cfg.teacher_train_limit)
    precision = cfg.compute_precision()
    curve = curve_set(dataset)
    history = train(model, dataset.train_x[idx], dataset.train_y[idx], epochs=cfg.teacher_epochs,
                    batch_size=cfg.batch_size, lr=cfg.lr, adam_eps=cfg.adam_eps, seed=cfg.teacher_seed,
                    eval_set=curve, on_progress=on_progress, should_stop=should_stop, precision=precision)
    test_logits = predict_logits(model, dataset.test_x, precision=precision)
    meta = {"accuracy": accuracy(test_logits, dataset.test_y), "seconds": history.elapsed[-1],
            "history": history.as_dict(), "config": cfg.teacher_dict(), "train_images": len(idx),
            "curve_test_images": len(curve[1]), "test_images": len(dataset.test_y)}
    store.save_checkpoint(_teacher_path(cfg, dataset), cfg.teacher, model.state_dict(), meta)
    return model, {**meta, "cached": False}, test_logits


def run_key(cfg: RunConfig, dataset: Dataset) -> str:
    """Cache key of a whole experiment's result."""
    return store.config_key({**cfg.as_dict(), "data": dataset.fingerprint})


def result_path(key: str) -> Any:
    """Where the comparison result with cache key `key` is stored."""
    return store.cache_path("results", f"{key}.json")


def read_result(path: Any) -> dict[str, Any] | None:
    """The comparison result stored at `path` (results/<key>.json), checked against kd_core.schema.COMPARISON
    and its own key, or None (a file that fails is reported and moved aside). Its model files are not
    looked at: Run history lists and deletes such a result; `cached_result` needs them."""
    return store.load_json(path, schema.with_key(schema.COMPARISON, path.stem))


def cached_result(cfg: RunConfig, dataset: Dataset | None = None) -> dict[str, Any] | None:
    """The stored result of this exact config, or None: also None when a student checkpoint it names is gone
    (a result without its models is not a finished run: the pages offer to run it again)."""
    dataset = dataset or load_dataset(cfg.dataset)
    path = result_path(run_key(cfg, dataset))
    found = read_result(path)
    if found is None:
        return None
    if (missing := store.missing_file(student_checkpoint_path(found, role) for role in ("distilled", "scratch"))):
        store.report_missing(path, missing)
        return None
    return found


def student_checkpoint_path(result: dict[str, Any], role: str) -> Any:
    """Where the seed-0 `role` ("distilled" or "scratch") student of a result is stored."""
    return store.cache_path("students", f"{result['key']}-{role}.pt")


def load_student(result: dict[str, Any], role: str) -> nn.Module | None:
    """The seed-0 `role` student of a comparison result, in eval mode, or None when its checkpoint is gone."""
    found = load_model(student_checkpoint_path(result, role))
    return None if found is None else found[0]


def _summary(accuracies: list[float], params: int, flops: int, seconds: float) -> dict[str, Any]:
    """One model's row of the result: accuracies over seeds with mean and sample std."""
    return {"accuracies": accuracies, "accuracy_mean": statistics.fmean(accuracies),
            "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "params": params, "flops": flops, "seconds": seconds}


def first_layer_norm(model: nn.Module) -> float:
    """L2 norm of the first parameter tensor: equal for two models that start from the same weights."""
    return float(next(model.parameters()).detach().norm())


def initial_student_weights(cfg: RunConfig, seed: int) -> dict[str, torch.Tensor]:
    """The student's initial weights for `seed`: both students of a seed start from these."""
    return create_model(cfg.student, seed=seed).state_dict()


def train_student(cfg: RunConfig, initial: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor, *,
                  seed: int, teacher_logits: torch.Tensor | None = None,
                  eval_set: tuple[torch.Tensor, torch.Tensor] | None = None,
                  on_progress: Callable[[Progress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, hint: HintLoss | None = None,
                  **train_options: Any) -> tuple[nn.Module, History, float, float]:
    """One student of `cfg` from `initial` weights: distilled when `teacher_logits` is given, else from scratch.

    Returns (model, history, first-layer norm at the start, training seconds without evaluation). The data order depends only on
    `seed`, and T, alpha, the T² switch and the precision come from `cfg`; `train_options` go to `train` as they are.
    With `hint` (kd_core.hints.HintLoss, rows aligned with `images`) the student also matches the
    teacher's hint layer; its projection is trained alongside and `hint.values` records the distance.
    """
    model = create_model(cfg.student)
    model.load_state_dict(initial)
    start_norm = first_layer_norm(model)
    if hint is not None:
        train_options = {**train_options, "extra_loss": hint.bind(model), "extra_params": hint.params}
    try:
        history = train(model, images, labels, epochs=cfg.student_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                        adam_eps=cfg.adam_eps, seed=seed, teacher_logits=teacher_logits,
                        temperature=cfg.temperature, alpha=cfg.alpha, t_squared=cfg.t_squared,
                        eval_set=eval_set, on_progress=on_progress, should_stop=should_stop,
                        precision=cfg.compute_precision(), **train_options)
    finally:
        if hint is not None:
            hint.unbind()
    return model, history, start_norm, history.elapsed[-1]


def hint_for(cfg: RunConfig, teacher: nn.Module,
             images: torch.Tensor) -> tuple[Callable[..., HintLoss], dict[str, Any]]:
    """(make(seed, weight=cfg.hint_weight) -> a fresh HintLoss, what is matched) for `cfg`'s hint on `images`.

    The teacher's features on `images` are computed here once, when they fit in memory (else per batch).
    """
    pair = hint_pair(cfg.teacher, cfg.student)
    once = fits_in_memory(pair, len(images))
    targets = teacher_targets(teacher, pair, images) if once else None
    info = {**pair.describe(), "weight": cfg.hint_weight, "loss": cfg.hint_loss,
            "teacher_features": "computed once" if once else "computed per batch (too big to keep)"}
    def make(seed: int, weight: float = cfg.hint_weight) -> HintLoss:
        return HintLoss(pair, weight, cfg.hint_loss, seed=seed, targets=targets, teacher=teacher, images=images)

    return make, info


@dataclass(frozen=True)
class _Students:
    """What every student of one experiment shares; sent once to wherever the students train."""

    cfg: RunConfig
    images: torch.Tensor
    labels: torch.Tensor
    soft_targets: torch.Tensor                 # the teacher's logits on `images`
    test_x: torch.Tensor                       # the whole test set (final numbers)
    test_y: torch.Tensor
    curve_x: torch.Tensor                      # the fixed test subset of the per-epoch curves (curve_set)
    curve_y: torch.Tensor
    test_teacher: torch.Tensor                 # the teacher's logits on the test images
    classes: int
    make_hint: Callable[..., HintLoss] | None  # hint_for's maker, when cfg.hint_weight > 0


def _train_one_student(shared: _Students, task: tuple[int, str], on_progress: Callable[[Progress], None] | None,
                       should_stop: Callable[[], bool] | None) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Student `task` = (seed, role) of an experiment: its row of the result, and its weights when seed is 0."""
    seed, role = task
    cfg = shared.cfg
    hint = shared.make_hint(seed) if shared.make_hint is not None and role == "distilled" else None
    model, history, start_norm, seconds = train_student(
        cfg, initial_student_weights(cfg, seed), shared.images, shared.labels, seed=seed,
        teacher_logits=shared.soft_targets if role == "distilled" else None,
        eval_set=(shared.curve_x, shared.curve_y), on_progress=on_progress, should_stop=should_stop, hint=hint)
    logits = predict_logits(model, shared.test_x, precision=cfg.compute_precision())
    run = {"seed": seed, "accuracy": accuracy(logits, shared.test_y), "seconds": seconds,
           "initial_first_layer_norm": start_norm, "history": history.as_dict(),
           "per_class": per_class_accuracy(logits, shared.test_y, shared.classes),
           "agreement_with_teacher": agreement(logits, shared.test_teacher),
           "confusion": confusion_matrix(logits, shared.test_y, shared.classes).tolist(),
           **(hint.summary() if hint is not None else {})}
    return run, (model.state_dict() if seed == 0 else None)


def run_experiment(cfg: RunConfig, on_event: Callable[[Event], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, use_cache: bool = True,
                   backend: Backend | None = None) -> dict[str, Any]:
    """Teacher, then distilled and scratch students for each seed; returns (and caches) the comparison.

    Both students of a seed start from the same initial weights and see the same batches in the same
    order; only the loss differs. The teacher's logits on the students' data are computed once. The
    students train on `backend` (default: the one the environment names, see kd_core.distributed).
    """
    cfg = cfg.validated()
    started = time.perf_counter()
    dataset = load_dataset(cfg.dataset)
    key = run_key(cfg, dataset)
    if use_cache and (found := cached_result(cfg, dataset)) is not None:
        return {**found, "cached": True}

    found_teacher = cached_teacher(cfg, dataset)
    backend = backend or backend_from_env()
    tasks = [(seed, role) for seed in range(cfg.seeds) for role in ("distilled", "scratch")]
    # progress is counted in estimated seconds (kd_core.estimate): a teacher step costs more than a student's
    plan = comparison_plan(cfg, dataset, teacher_cached=found_teacher is not None,
                           side_by_side=backend.side_by_side(len(tasks)))
    student_idx = balanced_subset(dataset.train_y, cfg.student_train_limit)
    tracker = Tracker(on_event, plan.seconds)
    teacher_units = plan.units("teacher", cfg.teacher_seed)
    precision = cfg.compute_precision()

    if found_teacher is not None:
        teacher, teacher_meta = found_teacher[0], {**found_teacher[1], "cached": True}
        test_teacher = predict_logits(teacher, dataset.test_x, precision=precision)
    else:  # trained now: its test logits come with it (one pass over the test set, not two)
        teacher, teacher_meta, test_teacher = train_teacher(cfg, dataset, tracker.watch("teacher", cfg.teacher_seed,
                                                                                    units=teacher_units), should_stop)
    tracker.trained(teacher_units)
    x_student, y_student = dataset.train_x[student_idx], dataset.train_y[student_idx]
    soft_targets = predict_logits(teacher, x_student, precision=precision)  # once, for every distilled epoch and seed
    tracker.trained(plan.units(OUTPUTS, None))
    make_hint, hint_info = hint_for(cfg, teacher, x_student) if cfg.hint_weight > 0 else (None, None)

    curve_x, curve_y = curve_set(dataset)
    shared = _Students(cfg, x_student, y_student, soft_targets, dataset.test_x, dataset.test_y, curve_x, curve_y,
                       test_teacher, len(dataset.classes), make_hint)
    saved: dict[str, bool] = {}  # role -> whether its seed-0 checkpoint was written
    watchers: dict[int, Callable[[Progress], None]] = {}  # students may train side by side: each ends its own

    def watch(i: int) -> Callable[[Progress], None]:
        """Student task `i`'s progress callback (one per task, kept for `finished`)."""
        seed, role = tasks[i]
        return watchers.setdefault(i, tracker.watch(role, seed, units=plan.units(role, seed)))

    def finished(i: int, outcome: tuple[dict[str, Any], dict[str, torch.Tensor] | None]) -> None:
        tracker.trained(plan.units(tasks[i][1], tasks[i][0]), watchers.get(i))
        if outcome[1] is not None:  # seed 0's weights, kept for the pages that use the trained students
            role = tasks[i][1]
            saved[role] = store.save_checkpoint(store.cache_path("students", f"{key}-{role}.pt"), cfg.student,
                                                outcome[1], {"role": role, "config": cfg.as_dict()})

    outcomes = backend.map(_train_one_student, shared, tasks, on_result=finished, should_stop=should_stop,
                           watch=watch)
    runs = {role: [run for (_, r), (run, _) in zip(tasks, outcomes) if r == role] for role in ("distilled", "scratch")}

    student = create_model(cfg.student)
    models = {
        "teacher": {**_summary([teacher_meta["accuracy"]], count_params(teacher), flops_per_image(teacher),
                               teacher_meta["seconds"]),
                    "cached": teacher_meta["cached"], "history": teacher_meta["history"],
                    # a teacher cached before curves used a subset measured its curve on the whole test set
                    "curve_test_images": teacher_meta.get("curve_test_images", len(dataset.test_y)),
                    "per_class": per_class_accuracy(test_teacher, dataset.test_y, len(dataset.classes)),
                    "confusion": confusion_matrix(test_teacher, dataset.test_y, len(dataset.classes)).tolist()},
    }
    for role, seeds in runs.items():
        models[role] = {**_summary([r["accuracy"] for r in seeds], count_params(student), flops_per_image(student),
                                   sum(r["seconds"] for r in seeds)),
                        "runs": seeds}
    result = {"dataset": cfg.dataset, "config": cfg.as_dict(), "key": key,
              "student_train_images": len(student_idx), "teacher_train_images": teacher_meta.get("train_images"),
              "classes": list(dataset.classes), "models": models,
              "curve_test_images": len(curve_y), "test_images": len(dataset.test_y),  # students' curves, final numbers
              **({"hint": hint_info} if hint_info is not None else {}),  # only with hint_weight > 0
              "total_seconds": time.perf_counter() - started}
    if all(saved.get(role) for role in ("distilled", "scratch")):  # a result is stored only after its models
        store.save_json(result_path(key), result)
    return {**result, "cached": False}


def _marked_cached(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored result marked as coming from the cache (None stays None)."""
    return None if found is None else {**found, "cached": True}


def comparison_job_key(result_key: str) -> str:
    """The job key of the comparison whose stored result has key `result_key`."""
    return "run-" + result_key


def comparison_task(cfg: RunConfig, dataset: Dataset) -> Task:
    """The teacher -> distilled -> scratch comparison of `cfg` as a Task (job key "run-" + its result key)."""
    cfg = cfg.validated()
    seeds = f"{cfg.seeds} seed{'s' if cfg.seeds > 1 else ''}"
    return Task(key=comparison_job_key(run_key(cfg, dataset)),
                label=f"teacher, distilled and scratch students (T={cfg.temperature:g}, alpha={cfg.alpha:g}, {seeds})",
                cached=lambda: _marked_cached(cached_result(cfg, dataset)),
                work=lambda report, should_stop, use_cache: run_experiment(
                    cfg, on_event=report, should_stop=should_stop, use_cache=use_cache))


def teacher_task(cfg: RunConfig, dataset: Dataset) -> Task:
    """Training `cfg`'s teacher alone as a Task; its result is the teacher's metadata."""
    def work(report: Callable[[Event], None], should_stop: Callable[[], bool], use_cache: bool) -> dict[str, Any]:
        """Train the teacher (or load it: a teacher is always reused from the cache)."""
        on_progress = Tracker(report, 1).watch("teacher", cfg.teacher_seed, units=1)
        return get_teacher(cfg, dataset, on_progress, should_stop)[1]

    def cached() -> dict[str, Any] | None:
        found = cached_teacher(cfg, dataset)
        return None if found is None else {**found[1], "cached": True}

    return Task(key="teacher-" + teacher_key(cfg, dataset), label=f"teacher {cfg.teacher}", cached=cached,
                work=work)
