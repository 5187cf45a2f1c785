"""Layer-wise (FitNets-style) hints on top of distillation: accuracy with and without, per hint weight."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

import torch

from kd_core.config import RunConfig
from kd_core.data import Dataset
from kd_core.evaluate import predict_logits
from kd_core.experiment import hint_for, initial_student_weights
from kd_core.lab.common import Spec, begin, paired_noise, stats, student, student_images
from kd_core.tasks import Report, ShouldStop

DEFAULT_HINT_WEIGHTS = (0.0, 1.0, 10.0)         # 0 = plain distillation, the reference


def _config(cfg: RunConfig) -> RunConfig:
    """`cfg` checked, with its own hint weight off: the experiment sets the weights itself."""
    return cfg.validated().replace(hint_weight=0.0)


def _settings(cfg: RunConfig, dataset: Dataset, weights: Sequence[float]) -> dict[str, Any]:
    """The hint weights as sorted distinct floats with 0 (plain KD) included, each checked, for the key."""
    weights = sorted({0.0, *(float(w) for w in weights)})
    for w in weights:
        cfg.replace(hint_weight=w)
    return {"weights": weights}


def hints(cfg: RunConfig, weights: Sequence[float] = DEFAULT_HINT_WEIGHTS, *,
          on_event: Report | None = None, should_stop: ShouldStop | None = None,
          use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """Distilled students with a FitNets-style hint of each weight in `weights` (0 = plain KD), and scratch.

    Per seed, every student starts from the same initial weights and sees the same batches; the hinted
    ones add `weight · D(proj(student layer), teacher layer)` (kd_core.hints; D is `cfg.hint_loss`) to the
    KD loss of `cfg` (T, alpha). Weight 0 is always included: it is the reference "without hints".
    `cfg.hint_weight` is ignored. The result says which layers are matched, their shapes and the
    projection, and per weight the accuracies over seeds, the paired gain over plain KD (with a noise
    margin as in data_budget) and the hint distance at the start and end of training.
    """
    run = begin(SPEC, cfg, dataset, {"weights": weights}, use_cache)
    if run.found:
        return run.found
    cfg, dataset, weights = run.cfg, run.dataset, run.settings["weights"]
    idx, x, y, student_steps = student_images(cfg, dataset)
    n_test = len(dataset.test_y)
    teacher, teacher_meta, train_logits = run.teacher(idx, cfg.seeds * (len(weights) + 1) * student_steps,
                                                      on_event, should_stop)
    soft = train_logits[idx]
    make_hint, matched = hint_for(cfg, teacher, x)  # the teacher's features on x, computed once

    def correct(model: torch.nn.Module) -> torch.Tensor:
        """Which test images `model` gets right."""
        return predict_logits(model, dataset.test_x, precision=cfg.compute_precision()).argmax(1) == dataset.test_y

    initials = [initial_student_weights(cfg, seed) for seed in range(cfg.seeds)]
    scratch = [correct(student(cfg, run.tracker, "scratch", "scratch", seed, initials[seed], x, y, None,
                               should_stop))
               for seed in range(cfg.seeds)]
    scratch_acc = stats([float(c.float().mean()) for c in scratch])
    run.tracker.part("scratch", {"role": "scratch", **scratch_acc})
    rows, plain = [], []
    for w in weights:
        step = "plain KD" if w == 0 else f"hint weight {w:g}"
        c = cfg.replace(hint_weight=w)
        results, distances = [], []  # per seed: which test images are right; hint distance summaries
        for seed in range(cfg.seeds):
            hint = make_hint(seed, w) if w > 0 else None
            results.append(correct(student(c, run.tracker, "distilled" if w == 0 else "hinted", step, seed,
                                           initials[seed], x, y, soft, should_stop, hint)))
            if hint is not None:
                distances.append(hint.summary())
        if w == 0:
            plain = results
        acc = stats([float(r.float().mean()) for r in results])
        gains = stats([float(r.float().mean() - p.float().mean()) for r, p in zip(results, plain)])
        discordant = statistics.fmean(float((r != p).float().mean()) for r, p in zip(results, plain))
        noise = paired_noise(gains["std"], cfg.seeds, discordant, n_test)
        row = {"weight": w, "accuracies": acc["values"], "accuracy_mean": acc["mean"], "accuracy_std": acc["std"],
               "gain_vs_plain_kd": gains["mean"], "gain_vs_plain_kd_std": gains["std"], "noise": noise,
               "within_noise": w == 0 or abs(gains["mean"]) < noise,
               "gain_vs_scratch": acc["mean"] - scratch_acc["mean"],
               **{name: statistics.fmean(d[name] for d in distances) if distances else None
                  for name in ("hint_distance_first", "hint_distance_last")}}
        rows.append(row)
        run.tracker.part(step, row)

    hinted = [r for r in rows if r["weight"] > 0]
    best = max(hinted, key=lambda r: r["accuracy_mean"]) if hinted else rows[0]
    return run.finish({
        "experiment": "hints", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": run.key,
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
                              "training (mean over seeds)"})


SPEC = Spec("hints", "layer-wise hints on top of distillation", hints, _settings, _config)
