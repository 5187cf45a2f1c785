"""The distillation loss, in one place: softened softmax, (1 - alpha)·CE + alpha·T²·KL, and its divergences."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


class KDLoss(NamedTuple):
    """The total loss and its two unweighted parts: the hard term and the soft term."""

    total: torch.Tensor
    hard: torch.Tensor   # cross-entropy with the true labels
    soft: torch.Tensor   # T²·KL(teacher_T || student_T), or plain KL when the T² factor is off


def soften(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Temperature-softened probabilities softmax(logits / T) over the last dimension."""
    return F.softmax(logits / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
            temperature: float, alpha: float, t_squared: bool = True) -> KDLoss:
    """L = (1 - alpha)·CE(labels, student) + alpha·T²·KL(softmax(teacher/T) || softmax(student/T)), batch mean.

    `alpha` weights the soft (teacher) term; the Keras example's alpha weights the hard term, so its
    alpha=0.1 is our alpha=0.9. The teacher is detached: no gradient ever reaches it. With
    `t_squared=False` the T² factor is dropped, and the soft gradient shrinks as 1/T². With no teacher
    logits this is plain cross-entropy: the student from scratch.
    """
    return divergence_kd_loss(student_logits, teacher_logits, labels, temperature, alpha, "forward",
                              t_squared=t_squared)


def reverse_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                    temperature: float, alpha: float, t_squared: bool = True) -> KDLoss:
    """L = (1 - alpha)·CE(labels, student) + alpha·T²·KL(softmax(student/T) || softmax(teacher/T)), batch mean.

    The reverse KL, sum_i q_i·(log q_i - log p_i) with q the student's and p the teacher's softened
    probabilities (the MiniLLM idea): it is large where the student puts mass the teacher does not, so
    the student is *mode-seeking* (it may drop the teacher's rarer choices), whereas kd_loss's forward KL
    is *mode-covering* (the student must spread over everything the teacher considers). Same weights,
    detached teacher and no-teacher behaviour as kd_loss.
    """
    return divergence_kd_loss(student_logits, teacher_logits, labels, temperature, alpha, "reverse",
                              t_squared=t_squared)


def divergence_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                       temperature: float, alpha: float, divergence: str = "forward", beta: float = 0.5,
                       t_squared: bool = True) -> KDLoss:
    """(1 - alpha)·CE + alpha·[T²·]D(teacher_T, student_T) with D named by `divergence` (see soft_divergence)."""
    hard = F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        return KDLoss(hard, hard, hard.new_zeros(()))
    d = soft_divergence(student_logits, teacher_logits.detach(), temperature, divergence, beta)
    soft = d * temperature ** 2 if t_squared else d
    return KDLoss((1 - alpha) * hard + alpha * soft, hard, soft)


def soft_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                    divergence: str = "forward", beta: float = 0.5) -> torch.Tensor:
    """Batch-mean divergence between softmax(teacher/T) = p and softmax(student/T) = q over the last dimension.

    "forward": KL(p || q), mode-covering. "reverse": KL(q || p), mode-seeking. "jsd": the generalized
    Jensen-Shannon divergence of GKD (Agarwal et al. 2024, as in TRL), beta·KL(p || m) + (1 - beta)·KL(q || m)
    with the mixture m = beta·p + (1 - beta)·q. Its two ends are special: the JSD itself *vanishes* as beta
    approaches 0 or 1 (m becomes q or p), so, as GKD does, beta = 0 means the forward KL and beta = 1 the
    reverse KL, not the limit of the JSD.
    """
    v = student_logits.shape[-1]
    q_log = F.log_softmax(student_logits.reshape(-1, v) / temperature, dim=-1)
    p_log = F.log_softmax(teacher_logits.reshape(-1, v) / temperature, dim=-1)
    # F.kl_div(input, target) = KL(target || input): the second argument is the distribution averaged over
    if divergence == "forward" or (divergence == "jsd" and beta == 0):
        return F.kl_div(q_log, p_log, reduction="batchmean", log_target=True)
    if divergence == "reverse" or (divergence == "jsd" and beta == 1):
        return F.kl_div(p_log, q_log, reduction="batchmean", log_target=True)
    if divergence != "jsd" or not 0 < beta < 1:
        raise ValueError(f"unknown divergence {divergence!r} (forward, reverse or jsd with 0 <= beta <= 1)")
    m_log = torch.logsumexp(torch.stack([p_log + math.log(beta), q_log + math.log(1 - beta)]), dim=0)
    return (beta * F.kl_div(m_log, p_log, reduction="batchmean", log_target=True)
            + (1 - beta) * F.kl_div(m_log, q_log, reduction="batchmean", log_target=True))
