"""Forward vs reverse KL you can see: a two-mode teacher on a 1-D grid, a one-mode (Gaussian) student fitted to it.

Every divergence value comes from kd_core.losses.soft_divergence, with log-densities on the grid as the logits
(its softmax turns them into probabilities on the grid). No training: each fit is the minimum of the loss over a
grid of (mean, width), so the whole toy, landscapes included, takes a fraction of a second.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from kd_core.losses import soften, soft_divergence

X_RANGE = (-10.0, 10.0)       # the 1-D grid the distributions live on
GRID_POINTS = 201
MODE_WIDTH = 1.0              # standard deviation of each of the teacher's two modes
RIGHT_WEIGHT = 0.6            # the right mode is a little heavier, so the mode-seeking fit has one answer
MEANS = np.linspace(-6.0, 6.0, 25)           # the student means searched (and drawn in the landscapes)
WIDTHS = np.geomspace(0.3, 6.0, 16)          # the student widths (standard deviations) searched
BETAS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)  # JSD(beta) weights precomputed (0 and 1: the pure KLs, by convention)
CURVE_BETAS = tuple(float(b) for b in np.round(np.linspace(0.0, 1.0, 51), 2))  # the value-vs-beta curve, ends included


def gaussian_log_density(x: np.ndarray, mean: float | np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """log N(x; mean, width²), broadcast over the arguments."""
    return -0.5 * ((x - mean) / width) ** 2 - np.log(width) - 0.5 * math.log(2 * math.pi)


def teacher_log_density(x: np.ndarray, separation: float, right_weight: float = RIGHT_WEIGHT) -> np.ndarray:
    """log density of the teacher: two Gaussian modes of width MODE_WIDTH at ±separation/2."""
    left = math.log(1 - right_weight) + gaussian_log_density(x, -separation / 2, MODE_WIDTH)
    right = math.log(right_weight) + gaussian_log_density(x, separation / 2, MODE_WIDTH)
    return np.logaddexp(left, right)


def divergences(teacher_logits: np.ndarray, student_logits: np.ndarray, divergence: str,
                beta: float = 0.5) -> np.ndarray:
    """soft_divergence(student, teacher) for each row of `student_logits` (..., grid) against one teacher row."""
    teacher = torch.as_tensor(teacher_logits, dtype=torch.float64)
    rows = torch.as_tensor(student_logits, dtype=torch.float64).reshape(-1, teacher.shape[-1])
    one = torch.func.vmap(lambda row: soft_divergence(row, teacher, 1.0, divergence, beta))  # per row, not the mean
    with warnings.catch_warnings():  # vmap loops over kl_div (no batching rule yet): correct, merely not fused
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        values = one(rows)
    return values.numpy().reshape(np.shape(student_logits)[:-1])


@dataclass(frozen=True)
class Fit:
    """The student that minimises one divergence over the (mean, width) grid."""

    mean: float
    width: float
    value: float  # the divergence at that student (nats)


@dataclass(frozen=True)
class ModeToy:
    """Everything the toy shows for one separation: teacher, loss landscapes and fits per JSD beta."""

    separation: float
    x: np.ndarray                          # the grid
    teacher: np.ndarray                    # the teacher's probabilities on the grid (sum 1)
    means: np.ndarray                      # landscape columns
    widths: np.ndarray                     # landscape rows
    forward: np.ndarray                    # KL(teacher || student), (widths, means)
    reverse: np.ndarray                    # KL(student || teacher), (widths, means)
    jsd: dict[float, np.ndarray]           # beta -> JSD(beta) landscape; beta 0 and 1 are the KLs by convention
    fits: dict[str, Fit]                   # "forward", "reverse"
    jsd_fits: dict[float, Fit]             # beta -> the JSD(beta) fit
    curve_betas: tuple[float, ...]         # the betas of jsd_curve, 0 and 1 included
    jsd_curve: np.ndarray                  # soft_divergence("jsd", beta) of the forward-KL fit at each curve beta

    def student(self, fit: Fit) -> np.ndarray:
        """A fitted student's probabilities on the grid."""
        return student_probabilities(self.x, fit.mean, fit.width)

    def on_a_mode(self, fit: Fit) -> bool:
        """Whether a fit sits on one of the teacher's two modes (within half a mode width, at most 1.5 modes wide)
        while the modes are apart (more than three mode widths)."""
        apart = self.separation > 3 * MODE_WIDTH
        near = min(abs(fit.mean - self.separation / 2), abs(fit.mean + self.separation / 2)) <= MODE_WIDTH / 2
        return apart and near and fit.width <= 1.5 * MODE_WIDTH


def student_probabilities(x: np.ndarray, mean: float, width: float) -> np.ndarray:
    """softmax of a Gaussian's log-density on the grid (kd_core.losses.soften): the student as the loss sees it."""
    return soften(torch.as_tensor(gaussian_log_density(x, mean, width)), 1.0).numpy()


def best_fit(landscape: np.ndarray, means: np.ndarray, widths: np.ndarray) -> Fit:
    """The (mean, width) of a landscape's minimum."""
    row, column = np.unravel_index(int(np.argmin(landscape)), landscape.shape)
    return Fit(float(means[column]), float(widths[row]), float(landscape[row, column]))


def mode_toy(separation: float = 5.0, betas: Sequence[float] = BETAS, means: np.ndarray = MEANS,
             widths: np.ndarray = WIDTHS) -> ModeToy:
    """The toy for teacher modes `separation` apart: every landscape and fit, and JSD(beta) against beta."""
    x = np.linspace(*X_RANGE, GRID_POINTS)
    teacher_logits = teacher_log_density(x, separation)
    students = gaussian_log_density(x[None, None, :], means[None, :, None], widths[:, None, None])
    forward = divergences(teacher_logits, students, "forward")
    reverse = divergences(teacher_logits, students, "reverse")
    # beta = 0 and 1 are the forward and reverse KL (soft_divergence's convention): those are not computed twice
    jsd = {float(b): forward if b == 0 else reverse if b == 1 else divergences(teacher_logits, students, "jsd", b)
           for b in betas}
    fits = {"forward": best_fit(forward, means, widths), "reverse": best_fit(reverse, means, widths)}
    anchor = gaussian_log_density(x, fits["forward"].mean, fits["forward"].width)
    curve = np.array([float(divergences(teacher_logits, anchor, "jsd", b)) for b in CURVE_BETAS])
    return ModeToy(float(separation), x, soften(torch.as_tensor(teacher_logits), 1.0).numpy(), means, widths,
                   forward, reverse, jsd, fits, {b: best_fit(z, means, widths) for b, z in jsd.items()},
                   CURVE_BETAS, curve)
