"""Architectures by name (the Keras example's two networks, the classroom pair), their size and FLOPs."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Callable, Iterator

import torch
from torch import nn
import torch.nn.functional as F


class SameMaxPool2d(nn.Module):
    """TensorFlow's "same" 2x2 stride-1 max pool: one -inf row/column at bottom/right, then the pool.

    Without autograd (inference) the pool is two elementwise maxima of shifted views of the padded input (along
    the width, then the height): the same numbers (a max is exact), in the input's layout, 6x faster than
    max_pool2d in bf16 channels_last (16 channels, 14x14: 1.4 vs 8.5 ms per 1,000 images, 2 threads), which also
    computes indices nobody uses; it was half of a keras-student's inference. Training keeps max_pool2d, whose
    backward sends a tie's gradient to one input (torch.maximum's splits it) as TensorFlow's does. An int8 model's
    quantized tensors cannot be padded: there PyTorch's symmetric padding=1 (implicit -inf) and a crop of the first
    row and column give the same windows.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Max over each 2x2 window starting at every pixel (windows past the bottom/right edge are cut)."""
        if x.is_quantized:
            return F.max_pool2d(x, 2, stride=1, padding=1)[..., 1:, 1:]
        padded = F.pad(x, (0, 1, 0, 1), value=float("-inf"))
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(padded, 2, stride=1)
        rows = torch.maximum(padded[..., :-1], padded[..., 1:])
        return torch.maximum(rows[..., :-1, :], rows[..., 1:, :])


def _keras_net(first: int, second: int) -> nn.Sequential:
    """The keras.io KD example's CNN with `first` and `second` conv filters (teacher 256/512, student 16/32).

    TensorFlow's "same" padding of its 3x3 stride-2 convs is one zero row/column at bottom/right (ZeroPad2d:
    symmetric conv padding would shift the windows, and padding=2 plus a crop costs 30% more conv FLOPs than
    the copy). Initialised as Keras does (Glorot-uniform weights, zero biases), so training matches the example's.
    Child names are those of the earlier form with a separate -inf pad ("3"), so checkpoints ("1.weight",
    "6.weight", "8.weight") and hint layer names still apply.
    """
    net = nn.Sequential(OrderedDict([
        ("0", nn.ZeroPad2d((0, 1, 0, 1))), ("1", nn.Conv2d(1, first, 3, stride=2)),          # 28x28 -> 14x14
        ("2", nn.LeakyReLU(0.2)),
        ("4", SameMaxPool2d()),                                                                # 14x14 -> 14x14
        ("5", nn.ZeroPad2d((0, 1, 0, 1))), ("6", nn.Conv2d(first, second, 3, stride=2)),     # 14x14 -> 7x7
        ("7", nn.Flatten()),
        ("8", nn.Linear(second * 7 * 7, 10)),
    ]))
    for layer in net:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


def classroom_teacher() -> nn.Sequential:
    """A fast, accurate teacher for the classroom demo: two 3x3 conv blocks with pooling and a 128-unit head."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 14x14x32
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 7x7x64
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def tiny_mlp() -> nn.Sequential:
    """A very small student: one hidden layer of 32 units on the flattened image."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 10))


MODELS: dict[str, Callable[[], nn.Module]] = {
    "keras-teacher": lambda: _keras_net(256, 512),
    "keras-student": lambda: _keras_net(16, 32),
    "classroom-teacher": classroom_teacher,
    "tiny-mlp": tiny_mlp,
}


GLOBAL_RNG = threading.RLock()  # held while torch's global generator is seeded and drawn from (see `seeded`)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generator seeded with `seed` and held by this thread until the block ends, so the weights a
    block draws depend on `seed` alone: a job's thread and a page's thread (the run estimate builds models too)
    would otherwise interleave their draws and seedings. Code that only borrows the generator holds GLOBAL_RNG
    around torch.random.fork_rng instead."""
    with GLOBAL_RNG:
        torch.manual_seed(seed)
        yield


def create_model(name: str, seed: int | None = None) -> nn.Module:
    """A freshly initialised model by registry name; with `seed`, its weights depend on the seed alone (`seeded`).

    Without a seed it still holds GLOBAL_RNG while it draws: a draw in one thread would change the weights a
    seeded block draws in another (students train side by side, kd_core.threads)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    with seeded(seed) if seed is not None else GLOBAL_RNG:
        return MODELS[name]()


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters: the trainable ones (default), or all of them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _forward_one_image(model: nn.Module, modules: list[nn.Module], hook: Callable[..., None]) -> None:
    """One 28x28 zero image through `model` with `hook` on each of `modules` (removed afterwards)."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 1, 28, 28))
    finally:
        for handle in handles:
            handle.remove()


def flops_per_image(model: nn.Module) -> int:
    """Forward FLOPs for one 28x28 image, counting 2 per multiply-add in conv and linear layers (plus biases)."""
    total = 0

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * (2 * per_output + (module.bias is not None))
        elif isinstance(module, nn.Linear):
            total += output.numel() * (2 * module.in_features + (module.bias is not None))

    _forward_one_image(model, [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))], count)
    return total


def activation_bytes(model: nn.Module) -> int:
    """Bytes of the largest output of any layer for one 28x28 image (what an inference batch must hold per image)."""
    largest = 0

    def measure(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal largest
        largest = max(largest, output.numel() * output.element_size())

    _forward_one_image(model, [m for m in model.modules() if not list(m.children())], measure)
    return largest


def size_bytes(model: nn.Module) -> int:
    """Bytes of the model's float parameters and buffers (the size of its weights on disk, less headers)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def uses_conv(model: nn.Module) -> bool:
    """Whether the model has conv layers (and so may gain from channels_last)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def memory_format(model: nn.Module) -> torch.memory_format:
    """The memory layout this model's inputs should have: channels_last for conv nets (faster on CPU)."""
    return torch.channels_last if uses_conv(model) else torch.contiguous_format


def random_images(batch: int, model: nn.Module | None = None) -> torch.Tensor:
    """(batch, 1, 28, 28) uniform inputs for timing or tracing, in `model`'s layout, from a private generator:
    torch's global one belongs to the seeded blocks (`seeded`) of whatever trains meanwhile in another thread."""
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return x if model is None else x.contiguous(memory_format=memory_format(model))
