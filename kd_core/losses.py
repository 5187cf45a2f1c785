"""The distillation loss, in one place: softened softmax and (1 - alpha)·CE + alpha·T²·KL."""

from __future__ import annotations

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
    return _mixed_loss(student_logits, teacher_logits, labels, temperature, alpha, t_squared, reverse=False)


def reverse_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                    temperature: float, alpha: float, t_squared: bool = True) -> KDLoss:
    """L = (1 - alpha)·CE(labels, student) + alpha·T²·KL(softmax(student/T) || softmax(teacher/T)), batch mean.

    The reverse KL, sum_i q_i·(log q_i - log p_i) with q the student's and p the teacher's softened
    probabilities (the MiniLLM idea): it is large where the student puts mass the teacher does not, so
    the student is *mode-seeking* (it may drop the teacher's rarer choices), whereas kd_loss's forward KL
    is *mode-covering* (the student must spread over everything the teacher considers). Same weights,
    detached teacher and no-teacher behaviour as kd_loss.
    """
    return _mixed_loss(student_logits, teacher_logits, labels, temperature, alpha, t_squared, reverse=True)


def _mixed_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                temperature: float, alpha: float, t_squared: bool, reverse: bool) -> KDLoss:
    """(1 - alpha)·CE + alpha·[T²·]KL of the softened outputs: forward KL(teacher || student), or reverse."""
    hard = F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        return KDLoss(hard, hard, hard.new_zeros(()))
    student_log_p = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    # F.kl_div(input, target) = KL(target || input): the second argument is the distribution averaged over
    kl = (F.kl_div(teacher_log_p, student_log_p, reduction="batchmean", log_target=True) if reverse
          else F.kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True))
    soft = kl * temperature ** 2 if t_squared else kl
    return KDLoss((1 - alpha) * hard + alpha * soft, hard, soft)
