"""Training a character-level language model: the token-level KD loss and the AdamW loop over random windows."""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from kd_core.lm.model import CharGPT
from kd_core.losses import KDLoss, kd_loss, reverse_kd_loss
from kd_core.train import CURVE_POINTS, Progress, TrainingCancelled


def token_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor,
                  temperature: float, alpha: float, divergence: str = "forward") -> KDLoss:
    """kd_loss (or reverse_kd_loss) at every position: logits (B, L, V) are reshaped to (B·L, V), targets to (B·L)."""
    v = student_logits.shape[-1]
    s = student_logits.reshape(-1, v)
    t = None if teacher_logits is None else teacher_logits.reshape(-1, v)
    fn = reverse_kd_loss if divergence == "reverse" else kd_loss
    return fn(s, t, targets.reshape(-1), temperature, alpha)


def train_lm(model: CharGPT, data: torch.Tensor, *, steps: int, batch_size: int, lr: float, seed: int,
             teacher: CharGPT | None = None, temperature: float = 1.0, alpha: float = 0.0,
             divergence: str = "forward", on_progress: Callable[[Progress], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict[str, list]:
    """Train `model` in place with AdamW on random windows of `data`; token-level KD when `teacher` is given.

    The windows depend only on `seed` (and len(data)), so two students with the same seed see the same
    text in the same order. Returns the loss history; raises TrainingCancelled when should_stop() is True.
    """
    length = model.spec.context
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 20)
                                                 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))))
    generator = torch.Generator().manual_seed(seed)
    epochs = round(steps * batch_size * length / max(len(data), 1), 2)
    report_every = max(1, steps // CURVE_POINTS)
    history: dict[str, list] = {"step": [], "epoch": [], "loss": [], "hard": [], "soft": []}
    sums, count = torch.zeros(3), 0
    start = time.perf_counter()
    if teacher is not None:
        teacher.eval()
    model.train()
    for step in range(1, steps + 1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled()
        offsets = torch.randint(0, len(data) - length - 1, (batch_size,), generator=generator)
        window = torch.stack([data[o:o + length + 1] for o in offsets.tolist()])
        x, y = window[:, :-1], window[:, 1:]
        teacher_logits = None
        if teacher is not None:
            with torch.inference_mode():
                teacher_logits = teacher(x)
            teacher_logits = teacher_logits.clone()  # an ordinary tensor (not an inference one) for autograd
        parts = token_kd_loss(model(x), teacher_logits, y, temperature, alpha, divergence)
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        sums += torch.stack([parts.total.detach(), parts.hard.detach(), parts.soft.detach()])
        count += 1
        if step % report_every == 0 or step == steps:
            loss, hard, soft = (sums / count).tolist()
            for name, value in (("step", step), ("epoch", epochs * step / steps), ("loss", loss), ("hard", hard),
                                ("soft", soft)):
                history[name].append(value)
            if on_progress is not None:
                on_progress(Progress(step, steps, epochs * step / steps, epochs, loss, hard, soft, train_acc=None,
                                     test_acc=None, elapsed=time.perf_counter() - start))
            sums, count = torch.zeros(3), 0
    model.eval()
    return history
