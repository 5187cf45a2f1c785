"""Sparse teacher targets: the teacher's top-k next tokens at each position, and the KD loss on them.

What the target is, exactly: the teacher's next-token distribution at T = 1 *coarsened* to k + 1 outcomes —
each of its top-k tokens that the student's restricted vocabulary holds, and one "other" bucket with all the
rest of its mass (its tail beyond the top-k, plus any top-k token the student has no row for). The student's
distribution is coarsened the same way (its probabilities of those tokens; everything else it predicts goes
to "other"), and the divergence (kd_core.losses.soft_divergence: forward KL, reverse KL or GKD's generalized
JSD) is taken between the two coarse distributions. Nothing is renormalised and no tail shape is invented: the
student must put the teacher's tail *mass* outside the top-k, and learns how to spread it from the hard term
(the true next token). The coarse KL is at most the full KL, and equals it when the teacher has no mass
outside its top-k within the student's vocabulary. Only T = 1: softening would need the teacher's full tail.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kd_core.lm.vocab import Vocab
from kd_core.losses import KDLoss, soft_divergence

LOG_ZERO = -1e4   # log of an empty bucket, finite so that 0·log 0 terms stay 0 in the divergences (not NaN)


@dataclass(frozen=True)
class TopK:
    """Per position: the teacher's top-k tokens as restricted ids (-1: not in the student's vocabulary) and
    their log-probabilities at T = 1 under the teacher's whole vocabulary (descending)."""

    ids: torch.Tensor        # (positions, k) int64
    logprobs: torch.Tensor   # (positions, k) float32

    def rows(self, index: torch.Tensor | slice) -> "TopK":
        """The targets of some positions."""
        return TopK(self.ids[index], self.logprobs[index])


def from_logits(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(full ids (..., k) int32, log-probs (..., k) float32) of the top-k of teacher logits (..., full vocab)."""
    values, ids = torch.topk(F.log_softmax(logits.float(), dim=-1), min(k, logits.shape[-1]), dim=-1)
    return ids.to(torch.int32), values


def restricted(full_ids: torch.Tensor, logprobs: torch.Tensor, vocab: Vocab) -> TopK:
    """Top-k targets in the student's numbering (full ids outside its vocabulary become -1)."""
    return TopK(vocab.to_restricted(full_ids), logprobs.float())


def coverage(logprobs: torch.Tensor) -> float:
    """The teacher's probability mass in its top-k, mean over positions."""
    return float(logprobs.double().exp().sum(-1).mean()) if logprobs.numel() else 0.0


def teacher_coarse(top: TopK) -> torch.Tensor:
    """The teacher's coarse log-distribution (positions, k + 1): its top-k tokens in the vocabulary, then "other"."""
    kept = top.ids >= 0
    logp = torch.where(kept, top.logprobs, torch.full_like(top.logprobs, LOG_ZERO))
    inside = (logp.double().exp() * kept).sum(-1, keepdim=True).clamp(max=1.0)
    other = torch.log1p(-inside).float().clamp(min=LOG_ZERO)   # log(1 - kept mass); an empty bucket is LOG_ZERO
    return torch.cat([logp, other], dim=-1)


def student_coarse(student_logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The student's log-distribution (positions, k + 1) on the same partition as teacher_coarse."""
    logq = F.log_softmax(student_logits, dim=-1)
    kept = ids >= 0
    gathered = torch.where(kept, logq.gather(-1, ids.clamp(min=0)), torch.full_like(ids, LOG_ZERO, dtype=logq.dtype))
    in_top = torch.zeros_like(logq).scatter_add_(-1, ids.clamp(min=0), kept.to(logq.dtype)) > 0
    other = torch.logsumexp(logq.masked_fill(in_top, float("-inf")), dim=-1, keepdim=True).clamp(min=LOG_ZERO)
    return torch.cat([gathered, other], dim=-1)


def topk_kd_loss(student_logits: torch.Tensor, top: TopK, labels: torch.Tensor, alpha: float,
                 divergence: str = "forward", beta: float = 0.5) -> KDLoss:
    """L = (1 - alpha)·CE(labels, student) + alpha·D(teacher, student) on the coarse top-k partition, batch mean.

    `student_logits` (positions, vocab) over the restricted vocabulary; `alpha` weights the soft (teacher)
    term, as in kd_core.losses.kd_loss; D is kd_core.losses.soft_divergence at T = 1 ("forward", "reverse" or
    "jsd" with `beta`; beta = 0 and 1 are the pure KLs). The teacher's targets carry no gradient.
    """
    hard = F.cross_entropy(student_logits, labels)
    soft = soft_divergence(student_coarse(student_logits, top.ids), teacher_coarse(top).detach(), 1.0,
                           divergence, beta)
    return KDLoss((1 - alpha) * hard + alpha * soft, hard, soft)
