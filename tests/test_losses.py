"""The KD loss against an independent hand computation, and the behaviour the app teaches."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kd_core.losses import divergence_kd_loss, kd_loss, reverse_kd_loss, soft_divergence, soften


def hand_kd(student, teacher, labels, T, alpha, t_squared=True):
    """The loss written out element by element, with math only."""
    total_ce = total_kl = 0.0
    for s_row, t_row, y in zip(student, teacher, labels):
        s_exp = [math.exp(v) for v in s_row]
        total_ce += -math.log(s_exp[y] / sum(s_exp))
        p_t = [math.exp(v / T) for v in t_row]
        p_t = [v / sum(p_t) for v in p_t]
        p_s = [math.exp(v / T) for v in s_row]
        p_s = [v / sum(p_s) for v in p_s]
        total_kl += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
    n = len(labels)
    soft = total_kl / n * (T * T if t_squared else 1.0)
    return (1 - alpha) * total_ce / n + alpha * soft, total_ce / n, soft


STUDENT = [[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]]
TEACHER = [[3.0, 0.0, 1.0], [-1.0, 1.5, 2.5]]
LABELS = [0, 2]


@pytest.mark.parametrize("T,alpha,t_squared", [(1.0, 0.5, True), (4.0, 0.9, True), (10.0, 0.1, False)])
def test_matches_hand_computation(T, alpha, t_squared):
    as64 = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731  (exact comparison)
    parts = kd_loss(as64(STUDENT), as64(TEACHER), torch.tensor(LABELS), T, alpha, t_squared)
    total, hard, soft = hand_kd(STUDENT, TEACHER, LABELS, T, alpha, t_squared)
    assert parts.total.item() == pytest.approx(total, rel=1e-9)
    assert parts.hard.item() == pytest.approx(hard, rel=1e-9)
    assert parts.soft.item() == pytest.approx(soft, rel=1e-9)


def test_kl_is_zero_when_logits_match():
    logits = torch.randn(8, 10)
    parts = kd_loss(logits, logits.clone(), torch.zeros(8, dtype=torch.long), 5.0, 0.7)
    assert parts.soft.item() == pytest.approx(0.0, abs=1e-6)


def test_alpha_weights_the_soft_term():
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    assert kd_loss(s, t, y, 4.0, 1.0).total.item() == pytest.approx(kd_loss(s, t, y, 4.0, 1.0).soft.item())
    assert kd_loss(s, t, y, 4.0, 0.0).total.item() == pytest.approx(kd_loss(s, t, y, 4.0, 0.0).hard.item())


def test_no_teacher_means_plain_cross_entropy():
    s, y = torch.tensor(STUDENT), torch.tensor(LABELS)
    parts = kd_loss(s, None, y, 4.0, 0.9)
    assert parts.total.item() == pytest.approx(torch.nn.functional.cross_entropy(s, y).item())
    assert parts.soft.item() == 0.0


def test_no_gradient_reaches_the_teacher():
    student = torch.randn(4, 10, requires_grad=True)
    teacher = torch.randn(4, 10, requires_grad=True)
    kd_loss(student, teacher, torch.arange(4), 3.0, 0.9).total.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def soft_grad_norm(T, t_squared):
    """Mean norm of d(soft term)/d(student logits) over random logit pairs at temperature T."""
    g = torch.Generator().manual_seed(0)
    student = (torch.randn(256, 10, generator=g) * 2).requires_grad_()
    teacher = torch.randn(256, 10, generator=g) * 2
    kd_loss(student, teacher, torch.zeros(256, dtype=torch.long), T, 1.0, t_squared).soft.backward()
    return student.grad.norm().item()


def test_t_squared_keeps_soft_gradient_size_steady():
    with_t2 = [soft_grad_norm(T, True) for T in (2.0, 5.0, 10.0, 20.0)]
    without = [soft_grad_norm(T, False) for T in (2.0, 5.0, 10.0, 20.0)]
    assert max(with_t2[1:]) / min(with_t2[1:]) < 1.5       # roughly constant for T >= 5
    assert without[-1] < without[0] / 20                    # collapses without it
    for T, a, b in zip((2.0, 5.0, 10.0, 20.0), with_t2, without):
        assert a == pytest.approx(b * T * T, rel=1e-4)       # exactly the T² factor


def test_soften_sums_to_one_and_flattens():
    logits = torch.tensor([[4.0, 1.0, 0.0, -2.0]])
    cold, warm = soften(logits, 1.0), soften(logits, 10.0)
    assert cold.sum().item() == pytest.approx(1.0) and warm.sum().item() == pytest.approx(1.0)
    assert warm.max() < cold.max() and warm.min() > cold.min()
    assert torch.equal(soften(logits, 1.0).argmax(), soften(logits, 10.0).argmax())


def numpy_jsd(p, q, beta):
    """Generalized JSD written out from its definition, for comparison."""
    m = beta * p + (1 - beta) * q
    return float(beta * np.sum(p * np.log(p / m)) + (1 - beta) * np.sum(q * np.log(q / m)))


def test_generalized_jsd_matches_its_definition_and_its_special_ends():
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(1, 6, generator=g), torch.randn(1, 6, generator=g)
    p, q = F.softmax(teacher, -1)[0].numpy(), F.softmax(student, -1)[0].numpy()
    for beta in (0.1, 0.5, 0.9):
        assert soft_divergence(student, teacher, 1.0, "jsd", beta).item() == pytest.approx(numpy_jsd(p, q, beta), rel=1e-5)
    forward = float(np.sum(p * np.log(p / q)))
    reverse = float(np.sum(q * np.log(q / p)))
    assert soft_divergence(student, teacher, 1.0, "jsd", 0.0).item() == pytest.approx(forward, rel=1e-5)
    assert soft_divergence(student, teacher, 1.0, "jsd", 1.0).item() == pytest.approx(reverse, rel=1e-5)
    # the JSD itself vanishes towards both ends: beta = 0 and 1 are the pure KLs by convention, not by continuity
    assert soft_divergence(student, teacher, 1.0, "jsd", 1e-4).item() < forward / 100
    assert soft_divergence(student, teacher, 1.0, "jsd", 1 - 1e-4).item() < reverse / 100
    with pytest.raises(ValueError):
        soft_divergence(student, teacher, 1.0, "jsd", 1.5)


def test_divergence_kd_loss_forward_and_reverse_equal_the_named_losses():
    g = torch.Generator().manual_seed(2)
    student, teacher, labels = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g), torch.arange(8)
    for name, fn in (("forward", kd_loss), ("reverse", reverse_kd_loss)):
        a, b = divergence_kd_loss(student, teacher, labels, 3.0, 0.7, name), fn(student, teacher, labels, 3.0, 0.7)
        assert torch.allclose(a.total, b.total)
