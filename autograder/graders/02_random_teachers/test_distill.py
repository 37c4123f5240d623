"""Part V: the distillation loop (views stacked view-major, both see all views, one step per batch, on_step)."""

from __future__ import annotations

import copy

import pytest
import torch

from autograder.runtime.checks import expect, expect_close

from .cases import DISTILL_CASES, distill_trace, small_net

HINT = ("For every batch: views = torch.cat(list(batch)); teacher(views), student(views); loss_fn(student_output, "
        "teacher_output); optimizer.zero_grad(), loss.backward(), "
        "optimizer.step(); the student in training mode")


@pytest.mark.parametrize("name", DISTILL_CASES)
def test_losses_and_student_equal_the_reference(ns, values, name):
    """The losses and the student's weights after one epoch equal the reference's"""
    got = distill_trace(ns, name)
    want = values[name]
    expect(isinstance(got["losses"], list) and len(got["losses"]) == len(want["losses"]),
           f"{name}: expected a list of {len(want['losses'])} losses (one per batch), got {got['losses']!r}")
    expect_close(got["losses"], want["losses"], f"{name}: the losses of the three batches", HINT)
    for key, value in want["weights"].items():
        expect_close(got["weights"][key], value, f"{name}: the student's {key} after the epoch", HINT, atol=1e-4)


def test_returns_python_floats_and_calls_on_step(ns):
    """The losses are Python floats, and on_step gets each of them after its step"""
    net = small_net(7)
    teacher = ns.FrozenTeacher(copy.deepcopy(net))
    student = ns.init_student(net, small_net(8), "teacher")
    loader = [1 + torch.randn(1, 8, 3, 8, 8) for _ in range(2)]
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-2, weight_decay=0.0)
    seen = []

    def on_step(loss):
        seen.append((loss, student[4].weight.detach().clone()))

    start = student[4].weight.detach().clone()
    losses = ns.distill_epoch(student, teacher, ns.DistillationLoss(1), loader, optimizer, on_step=on_step)
    expect(isinstance(losses, list) and all(type(v) is float for v in losses),
           f"distill_epoch must return a list of Python floats, got {losses!r}", "Append loss.item()")
    received = [v for v, _ in seen]
    wrong = [v for v in received if type(v) is not float]
    expect(not wrong, f"on_step must receive each loss as a Python float; it received {len(wrong)} value(s) of type "
           f"{type(wrong[0]).__module__}.{type(wrong[0]).__name__} (e.g. {repr(wrong[0])[:80]})" if wrong else "",
           "Call on_step with the float you append to the losses (loss.item()), not with the loss tensor")
    expect([v for v, _ in seen] == losses, f"on_step must be called once per batch with the loss (a float): got "
           f"{[v for v, _ in seen]}, the losses are {losses}", "Call on_step(loss.item()) after the optimizer's step")
    expect(bool(seen) and not torch.equal(seen[0][1], start), "on_step was called before the optimizer's step",
           "Call it after optimizer.step()")


def test_teacher_is_not_changed(ns):
    """The teacher's weights and statistics stay as they were"""
    net = small_net(7)
    teacher = ns.FrozenTeacher(net)
    before = copy.deepcopy(net.state_dict())
    student = ns.init_student(net, small_net(8), "teacher")
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-2, weight_decay=0.0)
    ns.distill_epoch(student, teacher, ns.DistillationLoss(1), [1 + torch.randn(1, 8, 3, 8, 8)], optimizer)
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    expect(not changed, f"distill_epoch changed the teacher's {changed}", "Only the student is trained")
