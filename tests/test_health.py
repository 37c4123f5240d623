"""The health panel (dinocourse/health.py): its metrics on outputs with known answers, its verdicts, and its place in
the solution's trainer (recorded at every step, kept in the checkpoint)."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from dinocourse.health import TrainingHealth

matplotlib.use("Agg")

K = 64


def observe(nb, teacher, student, temp=0.05, epoch=0, loss=None):
    """One observed call of the solution's DINOLoss (2 global + 1 local views), recorded as a step."""
    loss_module = nb.DINOLoss(K, num_global=2, num_local=1, student_temp=0.1)
    health = TrainingHealth()
    with health.watch(loss_module):
        value = loss_module(student, teacher, temp)
        health.record(epoch, float(value) if loss is None else loss)
    return health


def test_uniform_teacher_outputs_read_as_uniform_collapse(nb):
    teacher = torch.zeros(2 * 8, K)             # every output the same: centering leaves nothing, targets uniform
    health = observe(nb, teacher, torch.zeros(3 * 8, K))
    assert health.steps["sharpness"][0] == pytest.approx(K, rel=1e-4)
    assert health.steps["alive"][0] == pytest.approx(K, rel=1e-4)
    assert health.steps["kl"][0] == pytest.approx(0, abs=1e-5)    # the uniform student copies the uniform teacher
    assert health.steps["loss"][0] == pytest.approx(math.log(K), rel=1e-4)
    assert health.verdict().startswith("uniform collapse")


def test_one_prototype_for_every_image_reads_as_one_hot_collapse(nb):
    teacher = torch.zeros(2 * 8, K)
    teacher[:, 3] = 10.0                        # the same winner for every image, far above the temperature
    health = observe(nb, teacher, torch.randn(3 * 8, K))
    assert health.steps["sharpness"][0] == pytest.approx(1, abs=1e-3)
    assert health.steps["alive"][0] == pytest.approx(1, abs=1e-3)
    assert health.steps["used"][0] == 1
    assert health.verdict().startswith("one-hot collapse")


def test_distinct_sharp_targets_read_as_healthy(nb):
    teacher = torch.zeros(2 * 8, K)
    teacher[torch.arange(16), torch.arange(8).repeat(2)] = 10.0  # image i peaks at prototype i in both views
    student = torch.zeros(3 * 8, K)
    student[torch.arange(24), torch.arange(8).repeat(3)] = 10.0
    health = observe(nb, teacher, student)
    assert health.steps["sharpness"][0] == pytest.approx(1, abs=1e-3)
    assert health.steps["alive"][0] == pytest.approx(8, rel=1e-3)
    assert health.steps["used"][0] == 8
    assert health.steps["kl"][0] < 0.05
    assert health.verdict().startswith("healthy")
    assert health.epochs()[0]["labels"] == 8


def test_the_metrics_see_the_center_before_the_loss_updates_it(nb):
    loss_module = nb.DINOLoss(K, num_global=2, num_local=1, student_temp=0.1, center_momentum=0.5)
    health = TrainingHealth()
    teacher = torch.randn(16, K)
    with health.watch(loss_module):
        for _ in range(2):
            loss_module(torch.randn(24, K), teacher, 0.05)
            health.record(0, 0.0)
    assert health.steps["center_norm"][0] == 0.0           # the first call sees the initial, zero center
    assert health.steps["center_norm"][1] == pytest.approx(float((0.5 * teacher.mean(0)).norm()), rel=1e-5)


def test_nothing_is_recorded_outside_watch_or_without_a_call(nb):
    loss_module = nb.DINOLoss(K, num_global=2, num_local=1)
    health = TrainingHealth()
    loss_module(torch.randn(24, K), torch.randn(16, K), 0.05)
    health.record(0, 1.0)
    with health.watch(loss_module):
        health.record(0, 1.0)
    assert len(health) == 0
    assert health.verdict().startswith("no training step was recorded")


def small_trainer(nb, tmp_path, images, batch_size):
    """The solution's trainer on ``images`` sample images (2 global + 1 local views), constant schedules."""
    torch.manual_seed(0)
    dataset = nb.subset(nb.LocalGlobalPathMNIST(num_local=1, num_global=2), images)
    schedules = dict(lr_schedule=nb.CosineSchedule(1e-4, 1e-4), wd_schedule=nb.CosineSchedule(0.04, 0.04),
                     teacher_temp_schedule=nb.CosineSchedule(0.04, 0.04),
                     teacher_ema_schedule=nb.CosineSchedule(0.99, 0.99))
    return nb.DINOTrainer(dataset=dataset, batch_size=batch_size, out_dim=K, ckpt_name=tmp_path / "c.pth",
                          **schedules)


def test_the_trainer_records_every_step_and_keeps_them_in_its_checkpoint(nb, tmp_path):
    trainer = small_trainer(nb, tmp_path, 8, 4)
    trainer.train(2)
    assert len(trainer.health) == trainer.steps == 4
    assert [row["epoch"] for row in trainer.health.epochs()] == [1, 2]
    assert trainer.health.steps["loss"] == pytest.approx(trainer.history)
    again = small_trainer(nb, tmp_path, 8, 4)
    again.load()
    assert again.health.state_dict() == trainer.health.state_dict()
    fig = trainer.health.plot("test")
    assert len(fig.axes) == 5
    assert "epoch" in trainer.health.table()


def test_the_trainer_trains_under_bf16_autocast_as_on_a_gpu(nb, tmp_path):
    """``trainer.amp`` (set on a GPU) runs the student's training step under bf16 autocast; here on the CPU."""
    trainer = small_trainer(nb, tmp_path, 4, 2)
    trainer.amp = True
    trainer.train(1)
    assert len(trainer.history) == 2 and all(math.isfinite(v) for v in trainer.history)
    assert len(trainer.health) == 2
    assert all(p.dtype == torch.float32 for p in trainer.student.parameters())


def test_outputs_it_cannot_read_or_a_loss_that_is_no_module_never_stop_training():
    class OddLoss(torch.nn.Module):
        def forward(self, student_output, teacher_output, teacher_temp):
            return student_output.sum()

    health = TrainingHealth()
    watched_loss = OddLoss()
    with health.watch(watched_loss):
        watched_loss(torch.zeros(3), torch.zeros(()), "warm")  # a temperature that is no number
        health.record(0, 0.0)
    assert len(health) == 0 and "could not be recorded" in health.verdict()
    with health.watch(None), health.watch(lambda *a: 0):
        health.record(0, 0.0)
    assert len(health) == 0
