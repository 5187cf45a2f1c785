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


BatchLoss = Callable[[int, torch.Tensor], KDLoss]  # (step from 1, the batch's window offsets) -> its loss parts


def fit(model: torch.nn.Module, batch_loss: BatchLoss, *, tokens: int, length: int, steps: int, batch_size: int,
        lr: float, seed: int, on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> dict[str, list]:
    """The one AdamW loop of the language models: `steps` batches of `batch_size` random windows of `length` + 1
    tokens out of `tokens` (offsets drawn from `seed` alone, so students of one seed see the same text in the
    same order), warm-up then cosine learning rate, gradients clipped at 1. `batch_loss` turns a batch's offsets
    into its loss. Returns the loss history; raises TrainingCancelled when should_stop() is True."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 20)
                                                 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))))
    generator = torch.Generator().manual_seed(seed)
    epochs = round(steps * batch_size * length / max(tokens, 1), 2)
    report_every = max(1, steps // CURVE_POINTS)
    history: dict[str, list] = {"step": [], "epoch": [], "loss": [], "hard": [], "soft": []}
    sums, count = torch.zeros(3), 0
    start = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled()
        parts = batch_loss(step, torch.randint(0, tokens - length - 1, (batch_size,), generator=generator))
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


def train_lm(model: CharGPT, data: torch.Tensor, *, steps: int, batch_size: int, lr: float, seed: int,
             teacher: CharGPT | None = None, temperature: float = 1.0, alpha: float = 0.0,
             divergence: str = "forward", on_progress: Callable[[Progress], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict[str, list]:
    """Train a character model in place (fit) on `data`: cross-entropy, or token-level KD when `teacher` is given."""
    length = model.spec.context
    if teacher is not None:
        teacher.eval()

    def batch_loss(_step: int, offsets: torch.Tensor) -> KDLoss:
        """token_kd_loss of the windows at `offsets` (the teacher's logits computed without a graph)."""
        window = torch.stack([data[o:o + length + 1] for o in offsets.tolist()])
        x, y = window[:, :-1], window[:, 1:]
        teacher_logits = None
        if teacher is not None:
            with torch.inference_mode():
                teacher_logits = teacher(x)
            teacher_logits = teacher_logits.clone()  # an ordinary tensor (not an inference one) for autograd
        return token_kd_loss(model(x), teacher_logits, y, temperature, alpha, divergence)

    return fit(model, batch_loss, tokens=len(data), length=length, steps=steps, batch_size=batch_size, lr=lr,
               seed=seed, on_progress=on_progress, should_stop=should_stop)
