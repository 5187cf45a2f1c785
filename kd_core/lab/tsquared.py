"""Why T²: the same distillation with and without the T² factor, its soft-gradient size and accuracy."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from kd_core.config import RunConfig
from kd_core.data import Dataset, to_float
from kd_core.evaluate import accuracy, predict_logits
from kd_core.experiment import initial_student_weights
from kd_core.lab.common import Spec, begin, stats, student, student_images
from kd_core.losses import kd_loss
from kd_core.models import create_model
from kd_core.tasks import Report, ShouldStop

DEFAULT_T2_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def gradient_norms(cfg: RunConfig, initial: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
                   teacher_logits: torch.Tensor, temperature: float, t_squared: bool,
                   batches: int = 8) -> dict[str, float]:
    """Mean L2 norms, over the first `batches` batches, of the soft and hard terms' gradients at initialisation.

    The gradients are those of the unweighted terms (kd_loss's `soft` and `hard`), with respect to the
    student's logits (per example, averaged) and to all its parameters, at the initial weights.
    """
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


def _settings(cfg: RunConfig, dataset: Dataset, temperatures: Sequence[float], grad_batches: int) -> dict[str, Any]:
    """The temperatures as sorted distinct floats (each checked) and the gradient batches, for the key."""
    temperatures = sorted({float(t) for t in temperatures})
    if not temperatures:
        raise ValueError("give at least one temperature")
    for t in temperatures:
        cfg.replace(temperature=t)
    return {"temperatures": temperatures, "grad_batches": grad_batches}


def t_squared(cfg: RunConfig, temperatures: Sequence[float] = DEFAULT_T2_TEMPERATURES, *, grad_batches: int = 8,
              on_event: Report | None = None, should_stop: ShouldStop | None = None,
              use_cache: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    """The same distillation with and without the T² factor, per temperature: soft-gradient size and accuracy.

    The soft term's gradient scales as 1/T²; multiplied by T² it stays about the same size as T grows,
    so the soft term keeps its intended weight (alpha) against the hard term. Without it, at high T the
    student effectively learns from the labels alone. The gradient norms are measured at the students'
    common initialisation (seed 0); accuracies are over `cfg.seeds` seeds, scratch as the reference.
    """
    run = begin(SPEC, cfg, dataset, {"temperatures": temperatures, "grad_batches": grad_batches}, use_cache)
    if run.found:
        return run.found
    cfg, dataset, temperatures = run.cfg, run.dataset, run.settings["temperatures"]
    idx, x, y, student_steps = student_images(cfg, dataset)
    trainings = sum(1 if t == 1.0 else 2 for t in temperatures) + 1  # T = 1: T² = 1, both are the same run
    _, teacher_meta, train_logits = run.teacher(idx, cfg.seeds * trainings * student_steps, on_event, should_stop)
    soft = train_logits[idx]

    def test_acc(model: torch.nn.Module) -> float:
        """Test accuracy of `model`."""
        return accuracy(predict_logits(model, dataset.test_x, precision=cfg.compute_precision()), dataset.test_y)

    initials = [initial_student_weights(cfg, seed) for seed in range(cfg.seeds)]
    scratch = stats([test_acc(student(cfg, run.tracker, "scratch", "scratch", seed, initials[seed], x, y, None,
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
            acc = stats([test_acc(student(c, run.tracker, "distilled", f"T={t:g}, {name.replace('_', ' ')}", seed,
                                          initials[seed], x, y, soft, should_stop))
                         for seed in range(cfg.seeds)])
            row[name] = {"soft_grad_logits": grads["soft_logits"], "soft_grad_params": grads["soft_params"],
                         "hard_grad_logits": grads["hard_logits"], "hard_grad_params": grads["hard_params"],
                         "soft_to_hard_params": grads["soft_params"] / max(grads["hard_params"], 1e-12),
                         "accuracies": acc["values"], "accuracy_mean": acc["mean"], "accuracy_std": acc["std"]}
        rows.append(row)
        run.tracker.part(f"T={t:g}", row)
    return run.finish({
        "experiment": "t-squared", "dataset": cfg.dataset, "config": cfg.as_dict(), "key": run.key,
        "temperatures": temperatures, "alpha": cfg.alpha, "seeds": cfg.seeds, "grad_batches": grad_batches,
        "student_train_images": len(idx),
        "teacher": {"accuracy": teacher_meta["accuracy"], "cached": teacher_meta["cached"]},
        "scratch": {"accuracies": scratch["values"], "mean": scratch["mean"], "std": scratch["std"]},
        "rows": rows,
        "gradient_note": "norms of the unweighted soft term's gradient (T²·KL or plain KL) at the students' "
                         "initial weights, w.r.t. the logits (per example) and all parameters, averaged over "
                         f"{grad_batches} batches; the hard term's is the same at every T"})


SPEC = Spec("t-squared", "why T²: distillation with and without the T² factor", t_squared, _settings)
