"""Part IV: the trainer (modules and optimizer, per-step schedules, teacher inputs, EMA, reference losses, a run)."""

from __future__ import annotations

import copy

import pytest
import torch

from autograder.runtime.checks import expect, expect_close

from .cases import TRAINER_STEPS, fixed_batch, make_trainer


@pytest.fixture
def trainer(ns, tmp_path):
    return make_trainer(ns, tmp_path / "ckpt.pth")


def test_builds_student_teacher_optimizer_and_loss(ns, trainer):
    """__init__ builds the student, the EMA teacher, AdamW over the student only, and the loss"""
    expect(isinstance(trainer.student, ns.ViTTinyDINO), f"self.student is a {type(trainer.student).__name__}, "
           "expected a ViTTinyDINO")
    expect(isinstance(trainer.teacher, ns.EMAWrapper), f"self.teacher is a {type(trainer.teacher).__name__}, "
           "expected an EMAWrapper around a ViTTinyDINO")
    expect(isinstance(trainer.optim, torch.optim.AdamW), f"self.optim is a {type(trainer.optim).__name__}, "
           "expected torch.optim.AdamW")
    expect(isinstance(trainer.dino_loss, ns.DINOLoss), f"self.dino_loss is a {type(trainer.dino_loss).__name__}, "
           "expected a DINOLoss")
    optimized = {id(p) for g in trainer.optim.param_groups for p in g["params"]}
    missing = [n for n, p in trainer.student.named_parameters() if p.requires_grad and id(p) not in optimized]
    expect(not missing, f"the optimizer does not update {len(missing)} trainable student parameters "
           f"(e.g. {missing[:2]})", "Give AdamW the student's trainable parameters")
    expect(not optimized & {id(p) for p in trainer.teacher.parameters()}, "the optimizer also updates the teacher",
           "The teacher follows the student by EMA only")
    expect(trainer.dino_loss.num_global == 2 and trainer.dino_loss.num_local == 2,
           f"the loss expects {trainer.dino_loss.num_global} global and {trainer.dino_loss.num_local} local views, "
           "the dataset gives 2 and 2", "Pass the dataset's num_global and num_local to DINOLoss")


def test_each_step_applies_all_four_schedules(ns, trainer):
    """Each step sets lr, weight decay, teacher temperature and teacher momentum from the schedules at self.steps"""
    seen = []
    original = trainer.dino_loss.forward

    def spy(student_output, teacher_output, teacher_temp):
        seen.append(float(teacher_temp))
        return original(student_output, teacher_output, teacher_temp)

    trainer.dino_loss.forward = spy
    for step in (1, 6):
        trainer.steps = step
        trainer.training_step(fixed_batch())
        for group in trainer.optim.param_groups:
            expect_close(group["lr"], trainer.lr_schedule(step), f"learning rate after step {step}",
                         "Set group['lr'] of every parameter group from lr_schedule(self.steps)", atol=1e-12)
            expect_close(group["weight_decay"], trainer.wd_schedule(step), f"weight decay after step {step}",
                         "Set group['weight_decay'] of every parameter group from wd_schedule(self.steps)",
                         atol=1e-12)
        expect(seen, "the loss was not called through self.dino_loss")
        expect_close(seen[-1], trainer.teacher_temp_schedule(step), f"teacher temperature given to the loss at "
                     f"step {step}", "Pass teacher_temp_schedule(self.steps)", atol=1e-12)
        expect_close(trainer.teacher.momentum, trainer.teacher_ema_schedule(step), f"teacher momentum at step "
                     f"{step}", "Set self.teacher.momentum from teacher_ema_schedule(self.steps) before the update",
                     atol=1e-12)


def test_teacher_sees_only_global_views_gets_no_gradient_and_follows_the_student(ns, trainer):
    """The teacher sees only the global views, gets no gradient and moves by EMA towards the updated student"""
    inputs = []
    hook = trainer.teacher.model.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    batch = fixed_batch()
    before = copy.deepcopy(trainer.teacher.model)
    trainer.steps = 2
    loss = trainer.training_step(batch)
    hook.remove()
    expect(isinstance(loss, torch.Tensor) and loss.ndim == 0, "training_step must return the loss as a scalar "
           "tensor")
    expect(inputs, "the teacher was never called")
    got = torch.cat(inputs)
    expect(tuple(got.shape) == tuple(batch[:2].flatten(0, 1).shape), f"the teacher saw {got.shape[0]} images, "
           f"expected the {2 * batch.shape[1]} global views", "Slice the batch: only the first num_global views go "
           "through the teacher")
    expect(torch.equal(got, batch[:2].flatten(0, 1)), "the teacher did not see the global views, view-major",
           "Pass batch[:num_global] flattened over (view, image)")
    expect(all(p.grad is None for p in trainer.teacher.parameters()), "the teacher's parameters got gradients",
           "Run the teacher under torch.no_grad()")
    momentum = trainer.teacher_ema_schedule(2)
    student = dict(trainer.student.named_parameters())
    for name, param in trainer.teacher.model.named_parameters():
        expected = momentum * dict(before.named_parameters())[name] + (1 - momentum) * student[name]
        expect_close(param, expected.detach(), f"teacher parameter {name} after the step", "After the optimizer "
                     "step, set the momentum and call self.teacher.update(self.student)", atol=1e-6, rtol=1e-5)


def test_losses_match_the_reference(ns, values, trainer):
    """Two steps from fixed weights on a fixed batch give the reference's losses and center"""
    ref = values
    for step, expected in zip(TRAINER_STEPS, ref["losses"], strict=True):
        trainer.steps = step
        expect_close(trainer.training_step(fixed_batch()), expected, f"loss at step {step}",
                     "Check which views go to the student and the teacher, and the temperature", atol=1e-3, rtol=1e-3)
    expect_close(trainer.dino_loss.center, ref["center"], "the loss's center after two steps",
                 "Call the loss once per step with the teacher's outputs", atol=1e-3, rtol=1e-3)


def test_training_runs_every_step_and_returns_the_teachers_encoder(ns, tmp_path):
    """train() runs one step per batch, moves student and teacher, and returns the teacher's encoder"""
    trainer = make_trainer(ns, tmp_path / "ckpt.pth")
    student = copy.deepcopy(trainer.student.state_dict())
    teacher = copy.deepcopy(trainer.teacher.model.state_dict())
    encoder = trainer.train(1)  # one epoch of 8 images in batches of 4: two steps
    expect(encoder is trainer.teacher.model.encoder, "train() must return the teacher's encoder")
    expect(trainer.steps == 2, f"after one epoch of 8 images in batches of 4: expected 2 steps, got {trainer.steps}")
    moved = [name for name, value in trainer.student.state_dict().items() if not torch.equal(value, student[name])]
    expect(moved, "train() did not change the student", "Each step must update the student with the optimizer")
    followed = [name for name, value in trainer.teacher.model.state_dict().items()
                if not torch.equal(value, teacher[name])]
    expect(followed, "train() did not change the teacher", "Each step must update the teacher by EMA")
