"""Run history: every finished teacher -> distilled -> scratch comparison in the cache, listed, compared, deleted.

A run is one `results/<key>.json` written by kd_core.experiment.run_experiment. Deleting a run removes that
file and the run's two seed-0 student checkpoints. Teachers are never deleted: a teacher is keyed by the
teacher settings alone, so other runs, the lab's experiments and the Teacher page share it, and it is the
slowest model to retrain.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from pathlib import Path
from typing import Any, TypedDict

from kd_core import paths, store
from kd_core.config import RunConfig
from kd_core.roles import ROLES, STUDENTS

log = logging.getLogger("kd_core.history")
KEY_PATTERN = re.compile(r"[0-9a-f]{20}")  # store.config_key: the first 20 hex digits of a SHA-256


class RunRecord(TypedDict):
    """One finished run, as the history lists it (plain data: the chart builders take it as it is)."""

    key: str                            # the result's cache key (file name without .json)
    finished: float                     # POSIX time the result was written (the file's modification time)
    label: str                          # short settings ("T=8 α=0.9"), made unique among the listed runs
    config: dict[str, Any]              # the RunConfig as a dict
    student_images: int | None          # labelled images both students saw
    models: dict[str, dict[str, Any]]   # role -> {"mean", "std", "accuracies", "seconds"} (accuracies 0..1)
    training_seconds: float             # teacher + all students (the teacher's original time when it was cached)
    curves: dict[str, dict[str, list[float]]]  # student role -> per-epoch curves (see `curves`)


class RunKeyError(ValueError):
    """A run key that is malformed, unknown, or would resolve outside the cache folder."""


class RunRefusedError(RunKeyError):
    """A run whose files resolve outside the cache folder (a symlink out of it): nothing is deleted."""


def results_dir() -> Path:
    """The folder of finished comparison results."""
    return store.cache_path("results")


def curves(result: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per-epoch curves of each student, averaged over seeds: {"epoch", "test_acc", "test_acc_std", "hard"}.

    test_acc is the test accuracy (0..1) at each epoch's end; hard is the mean cross-entropy with the labels
    over that epoch's batches (the one loss term distilled and scratch students share). Seeds whose history
    is missing or has another length are left out.
    """
    out: dict[str, dict[str, list[float]]] = {}
    for role in STUDENTS:
        per_seed = [_epoch_points(run.get("history") or {}) for run in result["models"][role].get("runs", [])]
        per_seed = [p for p in per_seed if p["test_acc"]]
        if not per_seed:
            continue
        epochs = min(len(p["test_acc"]) for p in per_seed)
        per_seed = [p for p in per_seed if len(p["test_acc"]) == epochs]
        columns = {name: list(zip(*(p[name] for p in per_seed))) for name in ("test_acc", "hard")}
        out[role] = {"epoch": [float(e) for e in range(1, epochs + 1)],
                     "test_acc": [statistics.fmean(v) for v in columns["test_acc"]],
                     "test_acc_std": [statistics.stdev(v) if len(v) > 1 else 0.0 for v in columns["test_acc"]],
                     "hard": [statistics.fmean(v) for v in columns["hard"]]}
    return out


def _epoch_points(history: dict[str, list]) -> dict[str, list[float]]:
    """One seed's test accuracy at each epoch end and the mean hard loss over that epoch's snapshots."""
    test_acc, hard, since = [], [], []
    for acc, loss in zip(history.get("test_acc", []), history.get("hard", [])):
        since.append(loss)
        if acc is not None:  # the training loop evaluates on the test set at each epoch's end only
            test_acc.append(float(acc))
            hard.append(statistics.fmean(since))
            since = []
    return {"test_acc": test_acc, "hard": hard}


def _record(key: str, finished: float, result: dict[str, Any]) -> RunRecord:
    """A RunRecord from a stored result (KeyError, TypeError or ValueError when it is not a comparison result)."""
    models = {role: {"mean": float(result["models"][role]["accuracy_mean"]),
                     "std": float(result["models"][role]["accuracy_std"]),
                     "accuracies": [float(a) for a in result["models"][role]["accuracies"]],
                     "seconds": float(result["models"][role]["seconds"])} for role in ROLES}
    config = RunConfig(**result["config"]).validated().as_dict()  # checks names, ranges and types
    return RunRecord(key=key, finished=finished, label=short_label(config), config=config,
                     student_images=result.get("student_train_images"), models=models,
                     training_seconds=sum(m["seconds"] for m in models.values()), curves=curves(result))


def list_runs() -> list[RunRecord]:
    """Every finished comparison in the cache, newest first. Files that are not comparison results (corrupt,
    failing kd_core.schema.COMPARISON, behind a symlink out of the cache) are skipped: the store reports them
    once and moves them aside. A run whose student checkpoints are gone is still listed (and deletable)."""
    from kd_core.experiment import read_result  # imports torch: the history page imports it anyway

    folder = results_dir()
    found: list[tuple[float, str, Path]] = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        if KEY_PATTERN.fullmatch(path.stem):
            try:
                found.append((path.stat().st_mtime, path.stem, path))
            except OSError:  # deleted meanwhile
                continue
    records: list[RunRecord] = []
    for finished, key, path in sorted(found, reverse=True):
        result = read_result(path)
        if result is None:
            continue
        try:
            records.append(_record(key, finished, result))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping %s: not a comparison result (%s: %s)", path, type(exc).__name__, exc)
    return unique_labels(records)


def short_label(config: dict[str, Any]) -> str:
    """The settings a learner varies most, in a few characters: "T=8 α=0.9" (plus "no T²" when it is off)."""
    return f"T={config['temperature']:g} α={config['alpha']:g}" + ("" if config.get("t_squared", True) else " no T²")


_DETAILS = (  # settings that tell runs with the same T and alpha apart, in the order a label names them
    ("dataset", lambda c: str(c["dataset"])),
    ("student_epochs", lambda c: f"{c['student_epochs']} ep"),
    ("student_train_limit", lambda c: f"{c['student_train_limit'] or 'all'} img"),
    ("seeds", lambda c: f"{c['seeds']} seed{'s' if c['seeds'] > 1 else ''}"),
    ("teacher", lambda c: str(c["teacher"])),
    ("student", lambda c: str(c["student"])),
    ("teacher_epochs", lambda c: f"teacher {c['teacher_epochs']} ep"),
    ("hint_weight", lambda c: f"hint {c['hint_weight']:g}"),
)


def unique_labels(records: list[RunRecord]) -> list[RunRecord]:
    """Lengthen labels that several runs share with the settings that differ between them, else the key."""
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r["label"], []).append(r)
    for label, group in groups.items():
        if len(group) < 2:
            continue
        differing = [(name, fmt) for name, fmt in _DETAILS if len({repr(r["config"].get(name)) for r in group}) > 1]
        for r in group:
            details = [fmt(r["config"]) for _, fmt in differing]
            r["label"] = " · ".join([label, *details]) if details else label
    counts: dict[str, int] = {}
    for r in records:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    for r in records:
        if counts[r["label"]] > 1:
            r["label"] = f"{r['label']} #{r['key'][:6]}"
    return records


def table_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One flat row per run for a table: when, settings, accuracies in % (mean, seed spread), gain, seconds."""
    rows = []
    for r in records:
        c, m = r["config"], r["models"]
        rows.append({
            "run": r["label"], "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["finished"])),
            "dataset": c["dataset"], "teacher": c["teacher"], "student": c["student"], "T": c["temperature"],
            "alpha": c["alpha"], "T²": bool(c.get("t_squared", True)), "student epochs": c["student_epochs"],
            "labelled images": r["student_images"], "seeds": c["seeds"],
            "teacher (%)": round(100 * m["teacher"]["mean"], 1),
            "distilled (%)": round(100 * m["distilled"]["mean"], 1),
            "± distilled": round(100 * m["distilled"]["std"], 1),
            "scratch (%)": round(100 * m["scratch"]["mean"], 1),
            "± scratch": round(100 * m["scratch"]["std"], 1),
            "gain (points)": round(100 * (m["distilled"]["mean"] - m["scratch"]["mean"]), 1),
            "training (s)": round(r["training_seconds"], 1), "key": r["key"]})
    return rows


def _inside_cache(path: Path) -> Path:
    """`path` resolved (links followed); RunRefusedError when that lands outside the cache folder."""
    if not paths.resolves_inside(path, paths.cache_dir()):
        raise RunRefusedError(f"refusing to touch {path}: it resolves outside the cache folder")
    return path.resolve()


def run_files(key: str) -> list[Path]:
    """The files of run `key` that exist (result first, then its student checkpoints); checks the key strictly.

    RunKeyError when the key is not 20 lowercase hex digits or no finished run has it; RunRefusedError (a
    RunKeyError) when a file would resolve outside the cache folder.
    """
    from kd_core.experiment import student_checkpoint_path  # imports torch: only when files are looked up

    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        shown = repr(key[:40]) + ("..." if len(key) > 40 else "") if isinstance(key, str) else type(key).__name__
        raise RunKeyError(f"invalid run key {shown}: expected the 20 hex digits of a listed run")
    result = results_dir() / f"{key}.json"
    if result.is_symlink() and not paths.resolves_inside(result, paths.cache_dir()):
        raise RunRefusedError(f"refusing to touch {result}: it resolves outside the cache folder")
    if not result.is_file():
        raise RunKeyError(f"no finished run with key {key} in {results_dir()}")
    candidates = [result, *(student_checkpoint_path({"key": key}, role) for role in STUDENTS)]
    return [_inside_cache(p) for p in candidates if p.is_file()]


def delete_run(key: str) -> list[Path]:
    """Remove run `key`: its result and its student checkpoints, never the (shared) teacher; returns what went.

    Every path is checked before anything is removed, so a bad key deletes nothing.
    """
    files = run_files(key)
    removed = []
    for path in files:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:  # removed meanwhile (another session deleted the same run)
            continue
    log.info("deleted run %s (%d files)", key, len(removed))
    return removed
