"""One training loop for teacher and students: callbacks for progress, cooperative cancel, fixed seeds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from kd_core.convgrad import patch_weight_grads
from kd_core.data import to_float
from kd_core.evaluate import accuracy, autocast, predict_logits
from kd_core.optim import Adam
from kd_core.losses import kd_loss
from kd_core.models import memory_format
from kd_core.tasks import steps_of
from kd_core.worker import cores_per_worker

CURVE_POINTS = 40  # about this many points per training curve


class TrainingCancelled(Exception):
    """Raised inside the loop when `should_stop()` returns True."""


@dataclass(frozen=True)
class Progress:
    """A snapshot sent to the progress callback during training."""

    step: int            # optimisation steps done
    steps: int           # total steps of this training
    epoch: float         # epochs completed (fractional within an epoch)
    epochs: float        # epochs of the whole training (passes over the text, for language models)
    loss: float          # mean total loss since the last snapshot
    hard: float          # mean hard (CE) part since the last snapshot
    soft: float          # mean soft (T²·KL) part since the last snapshot
    train_acc: float | None  # training-batch accuracy since the last snapshot (None where not measured)
    test_acc: float | None  # accuracy on the eval set (the curves' fixed test subset), at epoch ends when one is given
    elapsed: float       # seconds spent training so far (evaluation excluded)


@dataclass
class History:
    """Training curves: one row per snapshot."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    hard: list[float] = field(default_factory=list)
    soft: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float | None] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)

    def add(self, p: Progress) -> None:
        """Append one snapshot."""
        for name in ("step", "loss", "hard", "soft", "train_acc", "test_acc", "elapsed"):
            getattr(self, name).append(getattr(p, name))

    def as_dict(self) -> dict[str, list]:
        """Plain lists, JSON-serialisable."""
        return {k: list(v) for k, v in self.__dict__.items()}


def configure_threads(workers: int = 1, reserved_cores: int = 0) -> int:
    """Give torch cores_per_worker(workers, reserved_cores) threads in this process, and return that count.

    Torch's intra-op threads slow down several-fold when another busy thread shares their cores, so a server
    that trains in its own process and also draws pages reserves a core for that.
    """
    threads = cores_per_worker(workers, reserved_cores)
    torch.set_num_threads(threads)
    return threads


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, batch_size: int,
          lr: float, seed: int, adam_eps: float = 1e-7, teacher_logits: torch.Tensor | None = None,
          temperature: float = 1.0, alpha: float = 0.0, t_squared: bool = True,
          eval_set: tuple[torch.Tensor, torch.Tensor] | None = None,
          on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          extra_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          extra_params: Sequence[nn.Parameter] = (), precision: str = "fp32") -> History:
    """Train `model` in place with Adam on uint8 `images`; KD loss when `teacher_logits` (aligned with images) is given.

    The data order depends only on `seed`, so two students trained with the same seed see the same
    batches. `should_stop` is polled every step; when it returns True, TrainingCancelled is raised.
    `extra_loss(model, idx, batch)`, when given, is called right after the forward pass on `batch` (rows
    `idx` of `images`; forward hooks on `model` have just seen it) and its value is added to the loss,
    e.g. a layer-wise hint (kd_core.hints); `extra_params` (e.g. that hint's projection) are optimised too.
    `precision` "bf16" runs forward passes and losses under bf16 autocast (kd_core.evaluate.autocast), the
    backward pass and the Adam update stay as autocast leaves them (fp32 weights and gradients), but for wide
    convolutions' weight gradients, one bf16 matmul each (kd_core.convgrad).
    """
    x = to_float(images)
    layout = memory_format(model)
    model.to(memory_format=layout)
    optimizer = Adam([*model.parameters(), *extra_params], lr=lr, eps=adam_eps)  # torch.optim.Adam's numbers
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = steps_of(len(x), 1, batch_size)
    total_steps = epochs * steps_per_epoch
    report_every = max(1, total_steps // CURVE_POINTS)
    history = History()
    sums = torch.zeros(4)  # loss, hard, soft, correct since the last snapshot
    seen = batches = step = 0
    start = time.perf_counter()
    eval_seconds = 0.0

    def snapshot(epoch: float, test_acc: float | None) -> None:
        nonlocal sums, seen, batches
        loss, hard, soft, correct = sums.tolist()
        p = Progress(step, total_steps, epoch, epochs, loss / max(batches, 1), hard / max(batches, 1),
                     soft / max(batches, 1), correct / max(seen, 1), test_acc,
                     time.perf_counter() - start - eval_seconds)
        history.add(p)
        if on_progress is not None:
            on_progress(p)
        sums, seen, batches = torch.zeros(4), 0, 0

    with patch_weight_grads(model):  # bf16: wide convolutions' weight gradients as one matmul each
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for first in range(0, len(x), batch_size):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled()
                idx = order[first:first + batch_size]
                batch = x[idx].contiguous(memory_format=layout)
                with autocast(precision):
                    logits = model(batch).float()
                    parts = kd_loss(logits, None if teacher_logits is None else teacher_logits[idx], labels[idx],
                                    temperature, alpha, t_squared)
                    total = parts.total if extra_loss is None else parts.total + extra_loss(model, idx, batch)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                step += 1
                with torch.no_grad():
                    sums += torch.stack([total.detach(), parts.hard.detach(), parts.soft.detach(),
                                         (logits.argmax(1) == labels[idx]).sum()])
                seen += len(idx)
                batches += 1
                if step % report_every == 0 and step % steps_per_epoch != 0:
                    snapshot(epoch + (first + len(idx)) / len(x), None)
            eval_start = time.perf_counter()
            test_acc = accuracy(predict_logits(model, eval_set[0], precision=precision), eval_set[1]) \
                if eval_set is not None else None
            eval_seconds += time.perf_counter() - eval_start
            snapshot(float(epoch + 1), test_acc)
    model.eval()
    return history
