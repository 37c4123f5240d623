"""Part II: the DINO loss — the seed's values, an independent reference, the centre and the gradients."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F


def reference_dino_loss(student, teacher, center, n_global, n_local, student_temp, teacher_temp):
    """Independent formulation: all (teacher view, student view) cross-entropies at once, diagonal masked."""
    n_views = n_global + n_local
    s = F.log_softmax(student.view(n_views, -1, student.shape[-1]) / student_temp, dim=-1)   # (V, B, K)
    t = F.softmax((teacher.view(n_global, -1, teacher.shape[-1]) - center) / teacher_temp, dim=-1)  # (G, B, K)
    ce = -torch.einsum("gbk,vbk->gvb", t, s).mean(dim=-1)  # (G, V)
    mask = torch.ones(n_global, n_views, dtype=torch.bool)
    mask[torch.arange(n_global), torch.arange(n_global)] = False
    return ce[mask].mean()


def test_seed_reference_values(nb):
    loss = nb.DINOLoss(out_dim=8, num_global=2, num_local=3, student_temp=0.1, center_momentum=0.5)
    student = torch.linspace(-1, 1, 160).view(5 * 4, 8)
    teacher = torch.linspace(0, 2, 64).view(2 * 4, 8)
    centers = [[0.4444, 0.4603, 0.4762, 0.4921, 0.5079, 0.5238, 0.5397, 0.5556],
               [0.6667, 0.6905, 0.7143, 0.7381, 0.7619, 0.7857, 0.8095, 0.8333],
               [0.7778, 0.8056, 0.8333, 0.8611, 0.8889, 0.9167, 0.9444, 0.9722]]
    torch.testing.assert_close(loss.center.flatten(), torch.zeros(8))
    for temp, value, center in zip([0.05, 0.08, 0.1], [1.8159, 1.9949, 2.0686], centers, strict=True):
        torch.testing.assert_close(loss(student, teacher, teacher_temp=temp), torch.tensor(value),
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(loss.center.flatten(), torch.tensor(center), atol=1e-4, rtol=1e-4)


CASES = [(2, 2, 0.1, 0.04, 0.9), (2, 4, 0.1, 0.07, 0.5), (3, 1, 0.2, 0.05, 0.0), (4, 1, 0.1, 0.1, 0.99)]


@pytest.mark.parametrize("n_global, n_local, student_temp, teacher_temp, momentum", CASES)
def test_matches_an_independent_reference_over_several_steps(nb, n_global, n_local, student_temp, teacher_temp,
                                                             momentum):
    gen = torch.Generator().manual_seed(n_global * 10 + n_local)
    batch, out_dim = 5, 7
    loss = nb.DINOLoss(out_dim, num_global=n_global, num_local=n_local, student_temp=student_temp,
                       center_momentum=momentum)
    center = torch.zeros(1, out_dim)
    for _ in range(3):
        student = torch.randn((n_global + n_local) * batch, out_dim, generator=gen)
        teacher = torch.randn(n_global * batch, out_dim, generator=gen)
        expected = reference_dino_loss(student, teacher, center, n_global, n_local, student_temp, teacher_temp)
        torch.testing.assert_close(loss(student, teacher, teacher_temp), expected)
        center = momentum * center + (1 - momentum) * teacher.mean(dim=0, keepdim=True)
        torch.testing.assert_close(loss.center.reshape(1, -1), center)


def test_center_is_a_buffer_saved_in_the_state_dict(nb):
    loss = nb.DINOLoss(out_dim=6)
    assert "center" in dict(loss.named_buffers())
    assert "center" in loss.state_dict()
    assert not any(True for _ in loss.parameters())


def test_no_gradient_reaches_the_teacher_and_the_student_gets_one(nb):
    loss = nb.DINOLoss(out_dim=6)
    student = torch.randn(4 * 3, 6, requires_grad=True)
    teacher = torch.randn(2 * 3, 6, requires_grad=True)
    loss(student, teacher, 0.04).backward()
    assert teacher.grad is None or torch.count_nonzero(teacher.grad) == 0
    assert student.grad is not None and torch.count_nonzero(student.grad) > 0


def test_loss_is_minimal_when_the_student_copies_a_sharp_teacher_on_other_views(nb):
    # two views per image agree, all views of an image share one class: the loss is the entropy of the targets
    loss = nb.DINOLoss(out_dim=4, num_global=2, num_local=0, student_temp=1.0, center_momentum=1.0)
    logits = torch.eye(4)[:3] * 10
    same = torch.cat([logits, logits])
    shuffled = torch.cat([logits, logits.roll(1, dims=0)])
    assert loss(same, same, 1.0) < loss(shuffled, same, 1.0)
