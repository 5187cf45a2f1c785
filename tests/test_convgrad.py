"""The bf16 patch path for wide convolutions' weight gradients (kd_core.convgrad) computes torch's gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kd_core.convgrad import PatchGradConv2d, eligible, patch_weight_grads
from kd_core.models import create_model


def grads(conv: nn.Conv2d, x: torch.Tensor, patched: bool) -> list[torch.Tensor]:
    """d(sum of squares of conv(x))/d(input, weight, bias) under bf16 autocast, through the patch path or torch's."""
    conv.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = PatchGradConv2d.apply(x, conv.weight, conv.bias, conv.stride) if patched else conv(x)
    out.float().square().sum().backward()
    return [x.grad, conv.weight.grad, conv.bias.grad]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_the_patch_gradients_are_torchs_to_bf16_rounding(stride, layout):
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 24, 3, stride=stride).to(memory_format=layout)
    x = torch.randn(4, 32, 11, 11).contiguous(memory_format=layout)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(PatchGradConv2d.apply(x, conv.weight, conv.bias, conv.stride), conv(x))
    ours, torchs = grads(conv, x, True), grads(conv, x, False)
    assert torch.equal(ours[0], torchs[0])  # the input's gradient is torch's own kernel
    for mine, reference in zip(ours[1:], torchs[1:]):
        assert mine.dtype == reference.dtype == torch.float32 and mine.shape == reference.shape
        scale = reference.abs().max()
        assert (mine - reference).abs().max() <= 2 ** -7 * scale  # bf16 keeps 8 significant bits
    assert not torch.equal(ours[1], torch.zeros_like(ours[1]))


def test_only_the_keras_teachers_wide_conv_takes_it_and_only_while_training_in_bf16():
    teacher, student = create_model("keras-teacher", seed=0), create_model("keras-student", seed=0)
    assert [name for name, m in teacher.named_modules() if eligible(m)] == ["6"]
    assert not any(eligible(m) for m in student.modules())
    assert not any(eligible(m) for m in create_model("classroom-teacher", seed=0).modules())  # padded convs

    conv, first, h = teacher.get_submodule("6"), teacher.get_submodule("1"), torch.randn(2, 256, 15, 15)
    with patch_weight_grads(teacher):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert type(conv(h).grad_fn).__name__ == "PatchGradConv2dBackward"
            assert type(first(torch.randn(2, 1, 29, 29)).grad_fn).__name__ == "ConvolutionBackward0"
            with torch.no_grad():
                assert conv(h).grad_fn is None
        assert type(conv(h).grad_fn).__name__ == "ConvolutionBackward0"  # fp32 keeps torch's kernels
    assert "forward" not in vars(conv)  # a plain nn.Conv2d again: quantization and export see nothing
