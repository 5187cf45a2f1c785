"""kd_core.optim.Adam: bitwise torch.optim.Adam's numbers, without importing torch._dynamo."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from kd_core.evaluate import autocast
from kd_core.models import create_model, memory_format
from kd_core.optim import Adam


@pytest.mark.parametrize("architecture", ["keras-student", "classroom-teacher", "tiny-mlp"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_adam_updates_bitwise_as_torch_optim_adam(architecture, precision, one_thread):
    torch.manual_seed(0)
    first = create_model(architecture)
    first.to(memory_format=memory_format(first))
    second = create_model(architecture)
    second.load_state_dict(first.state_dict())
    second.to(memory_format=memory_format(second))
    ours = Adam(first.parameters(), lr=3e-3, eps=1e-7)
    theirs = torch.optim.Adam(second.parameters(), lr=3e-3, eps=1e-7, fused=True)
    data = torch.Generator().manual_seed(1)
    for _ in range(15):
        x = torch.rand(16, 1, 28, 28, generator=data).contiguous(memory_format=memory_format(first))
        y = torch.randint(0, 10, (16,), generator=data)
        for model, optimizer in ((first, ours), (second, theirs)):
            with autocast(precision):
                loss = F.cross_entropy(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_parameter_without_a_gradient_is_left_alone_and_its_step_count_too():
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    optimizer = Adam([used, unused], lr=0.1)
    (used * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    optimizer.step()
    assert torch.equal(unused, torch.ones(3)) and not torch.equal(used, torch.ones(3))
    assert optimizer.steps == [1, 0]
    with pytest.raises(ValueError, match="empty"):
        Adam([], lr=0.1)


def test_training_does_not_import_torch_dynamo():
    """A cold process that trains a few steps never loads torch._dynamo (1.7 s of import on this machine)."""
    code = ("import sys, torch; from kd_core.train import train; from kd_core.models import create_model; "
            "x = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8); y = torch.randint(0, 10, (64,)); "
            "train(create_model('keras-student'), x, y, epochs=1, batch_size=32, lr=1e-3, seed=0); "
            "print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
