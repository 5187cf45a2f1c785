"""Adam computed as torch.optim.Adam computes it on the CPU, without torch.optim's import of torch._dynamo.

Making a torch.optim optimizer imports torch._dynamo (its methods are wrapped to keep the compiler out): 1.7 s on
the project's 2-core machine, a sixth of a cold classroom run from the command line, for nothing training here
uses. This is the same arithmetic in the same order as torch.optim.Adam's single-tensor path (what it runs for CPU
tensors), so the numbers are bitwise torch's (tests/test_optim.py) and the standalone script, which uses
torch.optim.Adam, prints the app's numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adam:
    """Adam (Kingma & Ba 2015) with torch.optim.Adam's arithmetic: no weight decay, no AMSGrad, no maximize."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam got an empty parameter list")
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.exp_avg: list[torch.Tensor | None] = [None] * len(self.params)     # made at a parameter's first step,
        self.exp_avg_sq: list[torch.Tensor | None] = [None] * len(self.params)  # in its layout then (as torch does)
        self.steps = [0] * len(self.params)  # per parameter: one without a gradient is skipped, its count too

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
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            if self.exp_avg[i] is None:
                self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avg, exp_avg_sq = self.exp_avg[i], self.exp_avg_sq[i]
            self.steps[i] += 1
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            step = float(self.steps[i])
            step_size = self.lr / (1 - self.beta1 ** step)
            denom = (exp_avg_sq.sqrt() / (1 - self.beta2 ** step) ** 0.5).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)
