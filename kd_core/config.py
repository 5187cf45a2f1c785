"""One run's settings as a dataclass with commented defaults, and the named presets."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16")


def checked_replace(settings: Any, what: str, changes: dict[str, Any]) -> Any:
    """A copy of dataclass `settings` with `changes`; ValueError naming any unknown key (`what` names the kind)."""
    known = {f.name for f in dataclasses.fields(settings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(settings, **changes)


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise ValueError with the message of the first (ok, message) pair that is not ok."""
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


@functools.cache
def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bf16 natively: AVX-512 BF16 or AMX among the flags in `cpuinfo` (False without it).

    torch.backends.cpu.get_cpu_capability() says only "AVX512", with or without BF16, so the flags decide.
    """
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def resolved_precision(precision: str) -> str:
    """"fp32" or "bf16": what `precision` means on this CPU ("auto" is bf16 where it is native, else fp32)."""
    return ("bf16" if native_bf16() else "fp32") if precision == "auto" else precision


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a teacher -> distilled student -> scratch student comparison."""

    dataset: str = "mnist-sample"          # registry name in kd_core.data.DATASETS
    teacher: str = "classroom-teacher"     # registry name in kd_core.models.MODELS
    student: str = "keras-student"         # both students share this architecture
    teacher_epochs: int = 4
    student_epochs: int = 30
    teacher_train_limit: int | None = None  # training images the teacher sees (None = all)
    student_train_limit: int | None = 400   # labelled images both students see (a small, class-balanced subset)
    batch_size: int = 32
    lr: float = 3e-3                        # Adam learning rate
    adam_eps: float = 1e-7                  # Keras' Adam default (PyTorch's is 1e-8)
    temperature: float = 8.0                # T: softens teacher and student outputs in the soft term
    alpha: float = 0.9                      # weight of the soft (teacher) term; 1 - alpha weights the labels
    t_squared: bool = True                  # multiply the soft term by T² (Hinton et al. 2015)
    seeds: int = 1                          # students are trained for seeds 0..seeds-1
    teacher_seed: int = 0                   # one teacher serves every student seed
    hint_weight: float = 0.0                # weight of the layer-wise hint term (kd_core.hints); 0 = off
    hint_loss: str = "mse"                  # hint distance: "mse" (FitNets) or "cosine"
    precision: str = "auto"                 # "fp32", "bf16" (autocast) or "auto" (bf16 where the CPU has it natively)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with `changes` applied; an unknown key raises ValueError naming it; values are checked."""
        return checked_replace(self, "run", changes).validated()

    def validated(self) -> "RunConfig":
        """This config, or ValueError naming the first out-of-range value."""
        checks = [
            (self.teacher_epochs >= 1 and self.student_epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.lr > 0, "learning rate must be positive"),
            (self.temperature > 0, "temperature must be positive"),
            (0.0 <= self.alpha <= 1.0, "alpha must be between 0 and 1"),
            (1 <= self.seeds <= 20, "seeds must be between 1 and 20"),
            (self.teacher_train_limit is None or self.teacher_train_limit >= 10, "teacher train limit must be >= 10"),
            (self.student_train_limit is None or self.student_train_limit >= 10, "student train limit must be >= 10"),
            (self.hint_weight >= 0, "hint weight must be zero (off) or positive"),
            (self.hint_loss in ("mse", "cosine"), "hint loss must be 'mse' or 'cosine'"),
            (self.precision in PRECISIONS, f"precision must be one of {list(PRECISIONS)}"),
        ]
        require(checks)
        return self

    def compute_precision(self) -> str:
        """"fp32" or "bf16": the precision this config trains and evaluates in on this CPU."""
        return resolved_precision(self.precision)

    def _precision_entry(self) -> dict[str, str]:
        """{"precision": resolved} for the dicts that key results; empty where this CPU computes in fp32 anyway
        (every result before the setting existed was fp32: their keys stay), so a dict rebuilds this config."""
        computed = self.compute_precision()
        return {} if computed == resolved_precision("auto") == "fp32" else {"precision": computed}

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of all settings (JSON-serialisable), precision as `_precision_entry` gives it."""
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k != "precision"}
        return {**settings, **self._precision_entry()}

    def teacher_dict(self) -> dict[str, Any]:
        """The settings that decide the teacher (its cache key)."""
        return {"dataset": self.dataset, "model": self.teacher, "epochs": self.teacher_epochs,
                "train_limit": self.teacher_train_limit, "batch_size": self.batch_size, "lr": self.lr,
                "adam_eps": self.adam_eps, "seed": self.teacher_seed, **self._precision_entry()}


PRESETS: dict[str, RunConfig] = {
    # The default: a class sees distillation work within a minute. Students see only 400 labelled
    # images (40 per class), where the teacher's soft targets add the most information; with labels
    # alone the student overfits them and plateaus (see README, "Why the classroom preset works").
    "classroom": RunConfig(),
    # The keras.io "Knowledge Distillation" example: its two networks, Adam 1e-3, batch 32, 10 epochs,
    # T = 10, and Keras alpha = 0.1 (weight of the hard loss) = our alpha 0.9 (weight of the soft loss).
    "keras": RunConfig(teacher="keras-teacher", student="keras-student", teacher_epochs=10, student_epochs=10,
                       student_train_limit=None, batch_size=32, lr=1e-3, adam_eps=1e-7,
                       temperature=10.0, alpha=0.9),
}


def preset(name: str) -> RunConfig:
    """The named preset, or ValueError listing the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]
