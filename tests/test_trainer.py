"""Part IV: the trainer — per-step schedules, teacher inputs and gradients, EMA, checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch

from dinocourse.data import subset


def make_trainer(nb, tmp_path, n_images=16, batch_size=8, out_dim=16, name="ckpt.pth"):
    torch.manual_seed(0)
    dataset = subset(nb.LocalGlobalPathMNIST(num_local=2, num_global=2), n_images)
    schedules = dict(lr_schedule=nb.CosineSchedule(1e-3, 1e-4, warmup_pct=0.25),
                     wd_schedule=nb.CosineSchedule(0.02, 0.04),
                     teacher_temp_schedule=nb.CosineSchedule(0.07, 0.07, warmup_pct=0.25, start_warmup_value=0.04),
                     teacher_ema_schedule=nb.CosineSchedule(0.9, 0.99))
    return nb.DINOTrainer(dataset=dataset, batch_size=batch_size, out_dim=out_dim, ckpt_name=tmp_path / name,
                          **schedules)


def fixed_batch(batch_size=4, n_views=4):
    return torch.randn(n_views, batch_size, 3, 28, 28, generator=torch.Generator().manual_seed(7))


def init_schedules(trainer, total=8):
    for s in (trainer.lr_schedule, trainer.wd_schedule, trainer.teacher_temp_schedule, trainer.teacher_ema_schedule):
        s.init(total)


def test_trainer_builds_student_teacher_optimizer_and_loss(nb, tmp_path):
    trainer = make_trainer(nb, tmp_path)
    assert isinstance(trainer.student, nb.ViTTinyDINO)
    assert isinstance(trainer.teacher, nb.EMAWrapper) and isinstance(trainer.teacher.model, nb.ViTTinyDINO)
    assert isinstance(trainer.optim, torch.optim.AdamW)
    assert isinstance(trainer.dino_loss, nb.DINOLoss)
    optimized = {id(p) for g in trainer.optim.param_groups for p in g["params"]}
    assert {id(p) for p in trainer.student.parameters() if p.requires_grad} <= optimized
    assert not optimized & {id(p) for p in trainer.teacher.parameters()}
    assert not any(p.requires_grad for p in trainer.teacher.parameters())


def test_each_step_applies_all_four_schedules(nb, tmp_path):
    trainer = make_trainer(nb, tmp_path)
    init_schedules(trainer)
    seen_temps = []
    original = trainer.dino_loss.forward

    def spy(student_output, teacher_output, teacher_temp):
        seen_temps.append(float(teacher_temp))
        return original(student_output, teacher_output, teacher_temp)

    trainer.dino_loss.forward = spy
    for step in range(3):
        trainer.steps = step
        trainer.training_step(fixed_batch())
        for group in trainer.optim.param_groups:
            assert group["lr"] == pytest.approx(trainer.lr_schedule(step))
            assert group["weight_decay"] == pytest.approx(trainer.wd_schedule(step))
        assert seen_temps[-1] == pytest.approx(trainer.teacher_temp_schedule(step))
        assert trainer.teacher.momentum == pytest.approx(trainer.teacher_ema_schedule(step))


def test_teacher_sees_only_global_views_gets_no_gradient_and_follows_the_student(nb, tmp_path):
    trainer = make_trainer(nb, tmp_path)
    init_schedules(trainer)
    inputs = []
    hook = trainer.teacher.model.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    batch = fixed_batch(batch_size=4)
    teacher_before = copy.deepcopy(trainer.teacher.model)
    trainer.steps = 2
    loss = trainer.training_step(batch)
    hook.remove()
    assert loss.ndim == 0 and torch.isfinite(loss)
    # the two global views, view-major (in one call or one call per view)
    torch.testing.assert_close(torch.cat(inputs), batch[:2].flatten(0, 1))
    assert all(p.grad is None for p in trainer.teacher.parameters())
    momentum = trainer.teacher_ema_schedule(2)
    student = dict(trainer.student.named_parameters())
    for name, param in trainer.teacher.model.named_parameters():
        expected = momentum * dict(teacher_before.named_parameters())[name] + (1 - momentum) * student[name]
        torch.testing.assert_close(param, expected.detach(), msg=name)


def test_training_records_the_loss_and_saves_a_checkpoint_every_epoch(nb, tmp_path):
    trainer = make_trainer(nb, tmp_path)
    encoder = trainer.train(2)
    assert encoder is trainer.teacher.model.encoder
    assert trainer.epoch == 2 and trainer.steps == 4 and len(trainer.history) == 4
    ckpt = torch.load(tmp_path / "ckpt.pth")
    assert ckpt["epoch"] == 2 and ckpt["steps"] == 4 and len(ckpt["history"]) == 4
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_round_trip_gives_an_identical_next_step(nb, tmp_path):
    first = make_trainer(nb, tmp_path)
    first.train(1)  # two steps, then a checkpoint
    second = make_trainer(nb, tmp_path)  # fresh weights from the same seed, then the checkpoint
    second.train(1, resume=True)  # loads the finished epoch: nothing left to train
    assert second.steps == first.steps == 2 and second.history == first.history
    torch.testing.assert_close(second.dino_loss.center, first.dino_loss.center)
    batch = fixed_batch()
    loss_a, loss_b = first.training_step(batch), second.training_step(batch)
    torch.testing.assert_close(loss_a, loss_b)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_too_small_a_dataset_for_one_batch_is_a_clear_error(nb, tmp_path):
    trainer = make_trainer(nb, tmp_path, n_images=4, batch_size=8)
    with pytest.raises(ValueError, match="no full batch"):
        trainer.train(1)
