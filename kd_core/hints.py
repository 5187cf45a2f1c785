"""Layer-wise ("hint") distillation, FitNets-style: the student also matches an intermediate teacher representation.

Romero et al. 2015 ("FitNets: Hints for Thin Deep Nets"): a "hint" layer of the teacher guides a layer of
the student through a small learned regressor (here a 1x1 conv, or a linear map for flat features) from
the student's channels to the teacher's:

    L = L_KD + hint_weight · D(proj(f_S(x)), f_T(x))

where L_KD is kd_core.losses.kd_loss, f_S and f_T are the two layers' outputs (spatially average-pooled
to a common size when they differ), and D is the mean squared error (FitNets) or 1 - cosine similarity
per image. The teacher is frozen; its features on the students' images are computed once (like its
logits) when they fit in HINT_MEMORY_BYTES, else per batch without autograd. FitNets trains the hint
first and then distils; here both terms are trained together from the start, the common simpler variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kd_core.data import to_float
from kd_core.models import GLOBAL_RNG, create_model

HINT_LOSSES = ("mse", "cosine")
HINT_MEMORY_BYTES = 512 * 2 ** 20   # teacher features above this size are computed per batch instead of once

# Default layers (child names of the nn.Sequential): each network's last conv feature map, the richest
# spatial representation before the classifier head.
HINT_LAYERS: dict[str, str] = {
    "classroom-teacher": "5",  # second conv block, after ReLU and pooling: 64 x 7 x 7
    "keras-teacher": "6",      # second (last) conv: 512 x 7 x 7
    "keras-student": "6",      # second (last) conv: 32 x 7 x 7
    "tiny-mlp": "2",           # the hidden layer after its ReLU: 32 (flat)
}


class _Stop(Exception):
    """Raised by a feature hook to skip the rest of a forward pass."""


def resolve_layer(model: nn.Module, layer: str | int | None, model_name: str = "") -> str:
    """The module name of `layer` in `model` (an index or name of a child; None = the model's default)."""
    names = [name for name, _ in model.named_modules() if name]
    if layer is None:
        if model_name not in HINT_LAYERS:
            raise ValueError(f"no default hint layer for model {model_name!r}; give one of {names}")
        layer = HINT_LAYERS[model_name]
    layer = str(layer)
    if layer not in names:
        raise ValueError(f"model {model_name or type(model).__name__} has no layer {layer!r}; choose from {names}")
    return layer


def features(model: nn.Module, layer: str, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Output of module `layer` for uint8 `images`, in eval and inference mode (the rest of the forward is skipped)."""
    module = dict(model.named_modules())[layer]
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        captured.append(output)
        raise _Stop

    handle = module.register_forward_hook(hook)
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                try:
                    model(to_float(images[start:start + batch_size]))
                except _Stop:
                    pass
    finally:
        handle.remove()
    return torch.cat([c.contiguous() for c in captured]) if captured else torch.empty(0)


def _common_shape(teacher: tuple[int, ...], student: tuple[int, ...]) -> tuple[int, ...]:
    """Per-image shape both features are pooled to: (teacher C, min H, min W), or (teacher C,) if either is flat."""
    if len(teacher) == 3 and len(student) == 3:
        return (teacher[0], min(teacher[1], student[1]), min(teacher[2], student[2]))
    return (teacher[0],)


def pool_to(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Average-pool features (N, C, H, W) or (N, C) to per-image `shape` ((h, w) spatial, or () = global)."""
    if x.dim() == 2:
        return x
    if len(shape) == 1:
        return x.mean(dim=(2, 3))
    return x if tuple(x.shape[2:]) == tuple(shape[1:]) else F.adaptive_avg_pool2d(x, shape[1:])


@dataclass(frozen=True)
class HintPair:
    """Which teacher layer guides which student layer, their shapes per image, and the projection between them."""

    teacher: str                   # teacher model name
    student: str                   # student model name
    teacher_layer: str             # module name in the teacher
    student_layer: str
    teacher_module: str            # the module's repr, e.g. "MaxPool2d(kernel_size=2, ...)"
    student_module: str
    teacher_shape: tuple[int, ...]  # per image: (C, H, W) or (C,)
    student_shape: tuple[int, ...]
    matched_shape: tuple[int, ...]  # both are average-pooled to this before the loss

    @property
    def projection(self) -> str:
        """The learned map from student to teacher channels."""
        kind = "1x1 conv" if len(self.matched_shape) == 3 else "linear"
        return f"{kind} {self.student_shape[0]} -> {self.teacher_shape[0]} channels"

    @property
    def projection_params(self) -> int:
        """Weights plus biases of the projection."""
        return self.student_shape[0] * self.teacher_shape[0] + self.teacher_shape[0]

    def new_projection(self, seed: int) -> nn.Module:
        """A freshly initialised projection, seeded without touching the global random state."""
        with GLOBAL_RNG, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if len(self.matched_shape) == 3:
                return nn.Conv2d(self.student_shape[0], self.teacher_shape[0], 1)
            return nn.Linear(self.student_shape[0], self.teacher_shape[0])

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable picture of what is matched."""
        return {"teacher": {"model": self.teacher, "layer": self.teacher_layer, "module": self.teacher_module,
                            "shape": list(self.teacher_shape)},
                "student": {"model": self.student, "layer": self.student_layer, "module": self.student_module,
                            "shape": list(self.student_shape)},
                "matched_shape": list(self.matched_shape), "projection": self.projection,
                "projection_params": self.projection_params,
                "pooling": {role: "none" if (len(shape), shape[1:]) == (len(self.matched_shape), self.matched_shape[1:])
                            else f"average-pooled to {list(self.matched_shape[1:]) or 'one value per channel'}"
                            for role, shape in (("teacher", self.teacher_shape), ("student", self.student_shape))}}


def hint_pair(teacher: str, student: str, teacher_layer: str | int | None = None,
              student_layer: str | int | None = None) -> HintPair:
    """The pairing of `teacher`'s and `student`'s hint layers (defaults: HINT_LAYERS), with shapes from a dummy pass."""
    t_model, s_model = create_model(teacher), create_model(student)
    t_layer = resolve_layer(t_model, teacher_layer, teacher)
    s_layer = resolve_layer(s_model, student_layer, student)
    probe = torch.zeros(1, 28, 28, dtype=torch.uint8)
    t_shape = tuple(features(t_model, t_layer, probe).shape[1:])
    s_shape = tuple(features(s_model, s_layer, probe).shape[1:])
    for name, shape in ((teacher, t_shape), (student, s_shape)):
        if len(shape) not in (1, 3):
            raise ValueError(f"hint layer of {name} has shape {shape}; need (C,) or (C, H, W)")
    modules = dict(t_model.named_modules()), dict(s_model.named_modules())
    return HintPair(teacher, student, t_layer, s_layer, repr(modules[0][t_layer]), repr(modules[1][s_layer]),
                    t_shape, s_shape, _common_shape(t_shape, s_shape))


def teacher_targets(teacher: nn.Module, pair: HintPair, images: torch.Tensor) -> torch.Tensor:
    """The teacher's hint features for `images`, pooled to the matched shape: computed once, reused every step."""
    parts = [pool_to(features(teacher, pair.teacher_layer, images[i:i + 500]), pair.matched_shape)
             for i in range(0, len(images), 500)]
    return torch.cat(parts) if parts else torch.empty(0, *pair.matched_shape)


def hint_distance(projected: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """D(proj(f_S), f_T), batch mean: mean squared error over all elements, or 1 - cosine similarity per image."""
    if kind == "mse":
        return F.mse_loss(projected, target)
    if kind == "cosine":
        return (1 - F.cosine_similarity(projected.flatten(1), target.flatten(1), dim=1)).mean()
    raise ValueError(f"unknown hint loss {kind!r}; choose from {list(HINT_LOSSES)}")


class HintLoss:
    """The hint term for `train(extra_loss=..., extra_params=...)`: weight · D(proj(student feats), teacher feats).

    `targets` holds the teacher's (pooled) features for the training images, rows aligned with them; or
    it is None and `teacher` and `images` are given, and they are computed per batch (for features too
    big to keep). `bind(student)` puts a forward hook on the student's hint layer, so the features of the
    training forward pass are reused (no second student pass); `unbind()` removes it after training.
    The projection is seeded by `seed` and only used in training: the student is deployed without it.
    """

    def __init__(self, pair: HintPair, weight: float, kind: str = "mse", *, seed: int = 0,
                 targets: torch.Tensor | None = None, teacher: nn.Module | None = None,
                 images: torch.Tensor | None = None) -> None:
        if kind not in HINT_LOSSES:
            raise ValueError(f"unknown hint loss {kind!r}; choose from {list(HINT_LOSSES)}")
        if targets is None and (teacher is None or images is None):
            raise ValueError("give the teacher's features, or the teacher and the images to compute them from")
        self.pair, self.weight, self.kind = pair, weight, kind
        self.targets, self.teacher, self.images = targets, teacher, images
        self.projection = pair.new_projection(seed)
        self.params = list(self.projection.parameters())
        self.values: list[float] = []   # the unweighted hint distance D at every training step
        self._last: torch.Tensor | None = None
        self._handle: Any = None

    def bind(self, student: nn.Module) -> "HintLoss":
        """Hook the student's hint layer (its training forward passes feed the next call)."""
        self.unbind()
        self._handle = dict(student.named_modules())[self.pair.student_layer].register_forward_hook(self._capture)
        return self

    def unbind(self) -> None:
        """Remove the hook."""
        if self._handle is not None:
            self._handle.remove()
            self._handle, self._last = None, None

    def _capture(self, module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if module.training:
            self._last = output

    def target(self, idx: torch.Tensor) -> torch.Tensor:
        """The teacher's (pooled) features for training rows `idx`."""
        if self.targets is not None:
            return self.targets[idx]
        return teacher_targets(self.teacher, self.pair, self.images[idx])

    def __call__(self, model: nn.Module, idx: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """weight · D for the batch whose training forward pass the hook has just seen."""
        if self._last is None:
            raise RuntimeError("the hint hook saw no training forward pass; call bind(student) first")
        student = pool_to(self._last, self.pair.matched_shape)
        self._last = None
        distance = hint_distance(self.projection(student), self.target(idx), self.kind)
        self.values.append(float(distance.detach()))
        return self.weight * distance

    def summary(self) -> dict[str, float]:
        """The hint distance D at the first step and averaged over the last tenth of training."""
        if not self.values:
            return {}
        tail = self.values[-max(1, len(self.values) // 10):]
        return {"hint_distance_first": self.values[0], "hint_distance_last": sum(tail) / len(tail)}


def fits_in_memory(pair: HintPair, images: int) -> bool:
    """Whether the teacher's pooled features for `images` images fit in HINT_MEMORY_BYTES (float32)."""
    per_image = 1
    for d in pair.matched_shape:
        per_image *= d
    return per_image * 4 * images <= HINT_MEMORY_BYTES
