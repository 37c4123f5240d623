"""Part II: the DINO loss (the original values, reference values for several settings, center, gradients)."""

from __future__ import annotations

import pytest
import torch

from autograder.runtime.checks import expect, expect_close, fmt

from .cases import LOSS_CASES, loss_inputs

HINTS = ("Check the sharpening (student / student_temp, (teacher - center) / teacher_temp), that you average over "
         "all (teacher view, student view) pairs except those of the same view, the view-major layout "
         "(torch.chunk over the first dimension), and that the center is updated after the loss")


def test_seed_values_over_three_steps(ns):
    """The original assignment's three steps give its losses and centers"""
    loss = ns.DINOLoss(out_dim=8, num_global=2, num_local=3, student_temp=0.1, center_momentum=0.5)
    student = torch.linspace(-1, 1, 160).view(5 * 4, 8)
    teacher = torch.linspace(0, 2, 64).view(2 * 4, 8)
    centers = [[0.4444, 0.4603, 0.4762, 0.4921, 0.5079, 0.5238, 0.5397, 0.5556],
               [0.6667, 0.6905, 0.7143, 0.7381, 0.7619, 0.7857, 0.8095, 0.8333],
               [0.7778, 0.8056, 0.8333, 0.8611, 0.8889, 0.9167, 0.9444, 0.9722]]
    expect_close(loss.center, torch.zeros(8), "the center before the first step", "It starts at zero")
    steps = zip([0.05, 0.08, 0.1], [1.8159, 1.9949, 2.0686], centers, strict=True)
    for step, (temp, value, center) in enumerate(steps, 1):
        expect_close(loss(student, teacher, teacher_temp=temp), value, f"loss at step {step} "
                     f"(teacher_temp={temp})", HINTS)
        expect_close(loss.center, center, f"center after step {step}", "center = center_momentum * center + "
                     "(1 - center_momentum) * mean of the teacher's outputs over the batch")


@pytest.mark.parametrize("name", LOSS_CASES)
def test_matches_the_reference_step_by_step(ns, values, name):
    """Loss values and centers equal the reference's over several steps, view counts, temperatures and momenta"""
    case = LOSS_CASES[name]
    loss = ns.DINOLoss(case["out_dim"], num_global=case["num_global"], num_local=case["num_local"],
                       student_temp=case["student_temp"], center_momentum=case["center_momentum"])
    for step, expected in enumerate(values[name]):
        student, teacher = loss_inputs(case, step)
        value = loss(student, teacher, expected["teacher_temp"])
        expect(torch.as_tensor(value).numel() == 1, f"{name}: the loss must be a scalar, got shape "
               f"{tuple(torch.as_tensor(value).shape)}")
        expect_close(value, expected["loss"], f"{name}, random inputs, step {step + 1} "
                     f"(teacher_temp={expected['teacher_temp']}): loss", HINTS)
        expect_close(loss.center, expected["center"], f"{name}, step {step + 1}: center after the step",
                     "Update the center with the mean of this batch's teacher outputs, after computing the loss")


def test_center_is_a_buffer_saved_in_the_state_dict(ns):
    """The center is a buffer (in the state_dict, not a parameter)"""
    loss = ns.DINOLoss(out_dim=6)
    expect("center" in dict(loss.named_buffers()), "DINOLoss has no buffer named `center`",
           'Create it with self.register_buffer("center", ...)')
    expect("center" in loss.state_dict(), "the center is not saved in the state_dict")
    expect(not list(loss.parameters()), f"DINOLoss has trainable parameters "
           f"({fmt([n for n, _ in loss.named_parameters()])}); the center must be a buffer")


def test_no_gradient_reaches_the_teacher(ns):
    """The student's outputs get a gradient, the teacher's none"""
    loss = ns.DINOLoss(out_dim=6)
    student = torch.randn(4 * 3, 6, requires_grad=True)
    teacher = torch.randn(2 * 3, 6, requires_grad=True)
    loss(student, teacher, 0.04).backward()
    expect(teacher.grad is None or int(torch.count_nonzero(teacher.grad)) == 0,
           "a gradient flows back into the teacher's outputs", "Detach the teacher's softmax (it is a fixed target)")
    expect(student.grad is not None and int(torch.count_nonzero(student.grad)) > 0,
           "no gradient reaches the student's outputs")
