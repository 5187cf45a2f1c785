"""bf16 training of conv nets: each convolution's weight gradient as one matrix product over its input's patches.

oneDNN's bf16 weight-gradient kernel for a convolution is the slowest part of a keras-teacher training step: its
512-filter conv takes 25 ms for the weight and bias gradients of a 32-image batch (2 threads, AVX-512 BF16), the
same arithmetic as one bf16 matrix product over the input's 3x3 patches 13.6 ms (patches copied in the input's
channels_last order, so the product comes out in the weight's own layout). In fp32 the product gains nothing
(33.2 vs 32.4 ms), so only bf16 autocast takes this path. The forward pass and the input's gradient stay
torch's own kernels. Training turns it on for one model at a time (`patch_weight_grads`); the model's modules
stay plain nn.Conv2d, so quantization, export and checkpoints see nothing of it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
import torch.nn.functional as F

# Convolutions with at least this many weights take the patch path: keras-teacher's 512x256x3x3 gains (a whole
# training step 57 -> 48.5 ms, 2 threads; 95 -> 84 ms, 1 thread), keras-student's 4,608-weight conv loses
# (2.5 -> 2.7-3.0 ms a step), and so does a 1-channel first conv.
WIDE_WEIGHTS = 65_536


class PatchGradConv2d(torch.autograd.Function):
    """conv2d (no padding, dilation 1, one group) whose backward computes the weight gradient as patches' matmul."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int]) -> torch.Tensor:
        """torch's conv2d in bf16; keeps the input and weight for the backward pass."""
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        return F.conv2d(x, weight, bias, stride)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad: torch.Tensor):
        """The input's gradient from torch's kernel; the weight's as (out, patch) = grad^T @ patches; the bias's."""
        x, weight = ctx.saved_tensors
        grad = grad.to(x.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, list(ctx.stride), [0, 0], [1, 1],
                                                         False, [0, 0], 1, [True, False, False])[0]
        n, channels, _, _ = x.shape
        filters, _, kh, kw = weight.shape
        out_h, out_w = grad.shape[2:]
        sh, sw = ctx.stride
        pixels = x.permute(0, 2, 3, 1)  # (n, h, w, channels): a free view of a channels_last input
        s_n, s_h, s_w, s_c = pixels.stride()
        patches = pixels.as_strided((n, out_h, out_w, kh, kw, channels), (s_n, sh * s_h, sw * s_w, s_h, s_w, s_c),
                                    pixels.storage_offset()).reshape(n * out_h * out_w, kh * kw * channels)
        rows = grad.permute(0, 2, 3, 1).reshape(n * out_h * out_w, filters)
        grad_w = (rows.t() @ patches).view(filters, kh, kw, channels).permute(0, 3, 1, 2)
        grad_b = rows.sum(0, dtype=torch.float32) if ctx.has_bias else None
        return grad_x, grad_w, grad_b, None


def _patch_grad_forward(conv: nn.Conv2d):
    """A forward for `conv` that takes the patch-gradient path under bf16 autocast when gradients are wanted."""
    plain = conv.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and conv.weight.requires_grad and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16):
            return PatchGradConv2d.apply(x, conv.weight, conv.bias, conv.stride)
        return plain(x)
    return forward


def eligible(conv: nn.Module) -> bool:
    """Whether `conv` is a wide plain 2-d convolution the patch gradient covers (no padding, dilation 1, one group)."""
    return (type(conv) is nn.Conv2d and conv.weight.numel() >= WIDE_WEIGHTS and conv.groups == 1
            and conv.dilation == (1, 1) and conv.padding == (0, 0) and conv.padding_mode == "zeros")


@contextlib.contextmanager
def patch_weight_grads(model: nn.Module) -> Iterator[None]:
    """While inside, `model`'s eligible convolutions compute bf16 weight gradients through PatchGradConv2d."""
    convs = [m for m in model.modules() if eligible(m)]
    for conv in convs:
        conv.forward = _patch_grad_forward(conv)
    try:
        yield
    finally:
        for conv in convs:
            del conv.forward
