"""Models: the Keras example's exact parameter counts, output shapes, FLOPs; the folded "same" pool is exact."""

import pytest
import torch
import torch.nn.functional as F

from kd_core.evaluate import inference_batch_size
from kd_core.models import MODELS, SameMaxPool2d, activation_bytes, count_params, create_model, flops_per_image


def test_keras_networks_have_the_examples_parameter_counts():
    assert count_params(create_model("keras-teacher")) == 1_433_610
    assert count_params(create_model("keras-student")) == 20_490


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_maps_images_to_ten_logits(name):
    assert create_model(name)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_keras_same_padding_shapes():
    net = create_model("keras-student")
    shapes = []
    x = torch.zeros(1, 1, 28, 28)
    for layer in net:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert (16, 14, 14) in shapes and (32, 7, 7) in shapes


def test_flops_count_conv_and_linear():
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert flops_per_image(linear) == 10 * (2 * 784 + 1)
    assert flops_per_image(create_model("keras-teacher")) > 50 * flops_per_image(create_model("keras-student"))


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="keras-student"):
        create_model("resnet")


def padded_keras_net(name):
    """The Keras nets as they were before the pool folded its padding: F.pad copies of -inf and zeros."""
    class Pad(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, x):
            return F.pad(x, (0, 1, 0, 1), value=self.value)

    first, second = {"keras-teacher": (256, 512), "keras-student": (16, 32)}[name]
    net = torch.nn.Sequential(Pad(0.0), torch.nn.Conv2d(1, first, 3, stride=2), torch.nn.LeakyReLU(0.2),
                              Pad(float("-inf")), torch.nn.MaxPool2d(2, stride=1),
                              Pad(0.0), torch.nn.Conv2d(first, second, 3, stride=2), torch.nn.Flatten(),
                              torch.nn.Linear(second * 7 * 7, 10))
    for layer in net:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return net


@pytest.mark.parametrize("size", [14, 7, 13, 1])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_pool_equals_the_padded_pool_bitwise_with_and_without_autograd(size, layout, dtype):
    """Inference (two maxima) and training (max_pool2d) both give the -inf-padded pool's numbers, in x's layout."""
    torch.manual_seed(size)
    x = torch.randn(5, 8, size, size).to(dtype).contiguous(memory_format=layout)
    x[0, 0, 0, :2] = 1.0  # a tie
    reference = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 2, stride=1)
    with torch.inference_mode():
        fast = SameMaxPool2d()(x)
    assert torch.equal(fast, reference) and fast.is_contiguous(memory_format=layout)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn_like(reference)
    out = SameMaxPool2d()(a)
    out.backward(grad)
    F.max_pool2d(F.pad(b, (0, 1, 0, 1), value=float("-inf")), 2, stride=1).backward(grad)
    assert torch.equal(out.detach(), reference) and torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("name", ["keras-teacher", "keras-student"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_keras_nets_equal_their_padded_form_and_load_its_checkpoints(name, layout):
    """Same initial weights from the same seed, old state dicts load strictly, equal logits, losses and gradients."""
    torch.manual_seed(0)
    reference = padded_keras_net(name)
    torch.manual_seed(0)
    net = create_model(name)
    assert list(net.state_dict()) == list(reference.state_dict())  # "1.weight", "6.weight", "8.weight", ...
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), reference.state_dict().values()))
    net.load_state_dict(reference.state_dict(), strict=True)
    net.to(memory_format=layout), reference.to(memory_format=layout)
    x = torch.rand(6, 1, 28, 28).contiguous(memory_format=layout)
    with torch.inference_mode():
        assert torch.equal(net.eval()(x), reference.eval()(x))
    y = torch.randint(0, 10, (6,))
    losses = [F.cross_entropy(m.train()(x), y) for m in (net, reference)]
    for loss in losses:
        loss.backward()
    assert torch.equal(losses[0], losses[1])
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(net.parameters(), reference.parameters()))


def test_inference_batch_follows_the_largest_activation():
    assert activation_bytes(create_model("keras-teacher")) == 256 * 15 * 15 * 4   # the zero-padded pool output
    assert {name: inference_batch_size(create_model(name)) for name in MODELS} == {
        "keras-teacher": 64, "classroom-teacher": 128, "keras-student": 256, "tiny-mlp": 256}
