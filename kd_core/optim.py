"""Adam as torch.optim.Adam(fused=True) computes it, without torch.optim's import of torch._dynamo.

Making a torch.optim optimizer imports torch._dynamo (its methods are wrapped to keep the compiler out): 1.7 s on
the project's 2-core machine, a sixth of a cold classroom run from the command line, for nothing training here
uses. The update is torch's fused kernel (`torch._fused_adam_`, one call per device and dtype, the call
torch.optim.Adam(fused=True) makes): 12x faster than the single-tensor path on the classroom teacher's 420k
parameters (2.9 -> 0.25 ms a step, 1 thread), the difference between 1.5 s and 0.1 s of a 500-step teacher. The
numbers are bitwise torch.optim.Adam(fused=True)'s (tests/test_optim.py), which the standalone script uses, so it
prints the app's numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adam:
    """Adam (Kingma & Ba 2015) with torch.optim.Adam(fused=True)'s arithmetic: no weight decay, AMSGrad or maximize."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam got an empty parameter list")
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        # Per parameter, made at its first step in its layout then (as torch does); a parameter without a gradient
        # is skipped, its step count too. The count is a float32 tensor on the parameter's device, as fused wants.
        self.exp_avg: list[torch.Tensor | None] = [None] * len(self.params)
        self.exp_avg_sq: list[torch.Tensor | None] = [None] * len(self.params)
        self.step_counts: list[torch.Tensor | None] = [None] * len(self.params)

    @property
    def steps(self) -> list[int]:
        """How many updates each parameter has had."""
        return [0 if count is None else int(count.item()) for count in self.step_counts]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (set_to_none=False zeroes them in place instead)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        groups: dict[tuple[torch.device, torch.dtype], list[list[torch.Tensor]]] = {}
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if self.exp_avg[i] is None:
                self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.step_counts[i] = torch.zeros((), dtype=torch.float32, device=p.device)
            group = groups.setdefault((p.device, p.dtype), [[], [], [], [], []])
            for column, tensor in zip(group, (p, p.grad, self.exp_avg[i], self.exp_avg_sq[i], self.step_counts[i])):
                column.append(tensor)
        for params, grads, exp_avgs, exp_avg_sqs, counts in groups.values():
            torch._foreach_add_(counts, 1)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], counts, amsgrad=False, lr=self.lr,
                               beta1=self.beta1, beta2=self.beta2, weight_decay=0.0, eps=self.eps, maximize=False,
                               grad_scale=None, found_inf=None)
