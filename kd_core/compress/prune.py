"""Pruning: global magnitude (L1) pruning of the conv and linear weights, and fine-tuning with the masks kept.

`torch.nn.utils.prune` ranks every conv and linear weight together and zeroes the smallest |w|; the masks
stay attached while fine-tuning (KD loss, or labels alone to compare), so pruned weights stay zero.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from kd_core.config import RunConfig
from kd_core.train import Progress, train


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """The (module, "weight") pairs magnitude pruning acts on: every conv and linear weight."""
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def prune_magnitude(model: nn.Module, sparsity: float) -> nn.Module:
    """A copy of `model` with the `sparsity` fraction of its conv/linear weights (smallest |w|, all layers
    ranked together) set to zero. The masks stay attached (weight = weight_orig * mask) so fine-tuning
    keeps them zero; call `make_permanent` before saving or exporting."""
    pruned = copy.deepcopy(model)
    if sparsity > 0:
        torch_prune.global_unstructured(prunable(pruned), pruning_method=torch_prune.L1Unstructured,
                                        amount=float(sparsity))
    return pruned


def finetune_pruned(model: nn.Module, sparsity: float, cfg: RunConfig, images: torch.Tensor, labels: torch.Tensor,
                    teacher_logits: torch.Tensor | None, *, epochs: int = 1, seed: int = 0,
                    on_progress: Callable[[Progress], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> nn.Module:
    """`model` pruned to `sparsity`, then fine-tuned for `epochs` on `images`: with `cfg`'s KD loss (T, alpha,
    T²) when `teacher_logits` are given, else with labels alone (CE). Same optimizer settings and data order
    (`seed`) either way; masks are made permanent at the end."""
    pruned = prune_magnitude(model, sparsity)  # the same mask every time: it depends only on |w|
    if epochs:
        train(pruned, images, labels, epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, adam_eps=cfg.adam_eps,
              seed=seed, teacher_logits=teacher_logits, temperature=cfg.temperature,
              alpha=cfg.alpha if teacher_logits is not None else 0.0, t_squared=cfg.t_squared,
              on_progress=on_progress, should_stop=should_stop)
    return make_permanent(pruned).eval()


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold the pruning masks into the weights (plain tensors again, zeros kept); returns the model."""
    for module, name in prunable(model):
        if torch_prune.is_pruned(module) and hasattr(module, f"{name}_orig"):
            torch_prune.remove(module, name)
    return model
