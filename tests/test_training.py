"""The given training code of Assignment 1 (``dinocourse.training``), its shipped reference runs
(``dinocourse.reference_runs``) and its figures (``dinocourse.figures``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import matplotlib
import pytest
import torch

from dinocourse import figures, reference_runs
from dinocourse.data import REPO_ROOT, DataError, PathMNIST
from dinocourse.training import Budget, Recipe, setup

matplotlib.use("Agg")


def schedules(nb, recipe: Recipe | None = None):
    recipe = recipe or Recipe()
    return dict(lr_schedule=recipe.lr(nb.CosineSchedule(5e-4, 2e-4, warmup_pct=0.1)),
                wd_schedule=nb.CosineSchedule(0.02, 0.04),
                teacher_temp_schedule=recipe.teacher_temperature(nb.CosineSchedule(0.07, 0.07, 0.1, 0.04)),
                teacher_ema_schedule=nb.CosineSchedule(0.992, 0.996))


def tiny_trainer(nb, ckpt, n_images=8):
    torch.manual_seed(0)
    dataset = nb.subset(nb.LocalGlobalPathMNIST(num_local=2, num_global=2), n_images)
    return nb.DINOTrainer(dataset, batch_size=4, out_dim=16, ckpt_name=ckpt, **schedules(nb))


def test_the_setup_prints_the_budget_in_one_line_and_refuses_an_unknown_mode(monkeypatch, capsys):
    monkeypatch.setenv("DINO_MODE", "quick")
    budget = setup()
    assert capsys.readouterr().out.count("\n") == 1
    assert (budget.epochs, budget.batch_size, budget.recipe) == (10, 16, Recipe.short_run(16))
    assert setup(recipe="original", quiet=True).recipe == Recipe()
    with pytest.raises(ValueError, match="must be one of quick, full, tiny, got 'fast'"):
        setup(mode="fast")


@pytest.mark.parametrize("change", ["recipe", "seed", "epochs", "batch_size", "lr", "views", "data"])
def test_a_checkpoint_belongs_to_every_setting_that_changes_training(nb, tmp_path, monkeypatch, change):
    monkeypatch.setenv("DINO_RESULTS", str(tmp_path))
    base = setup(mode="quick", quiet=True)
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=2)
    path = base.checkpoint(dataset, schedules(nb, base.recipe), out_dim=256)
    assert path == base.checkpoint(dataset, schedules(nb, base.recipe), out_dim=256)  # the same settings: one file
    other, other_set, other_schedules = base, dataset, schedules(nb, base.recipe)
    if change == "recipe":
        other = setup(mode="quick", recipe="original", quiet=True)
        other_schedules = schedules(nb, other.recipe)
    elif change in ("seed", "epochs", "batch_size"):
        other = Budget(**{**vars(base), change: getattr(base, change) + 1})
    elif change == "lr":
        other_schedules["lr_schedule"] = base.recipe.lr(nb.CosineSchedule(1e-3, 2e-4, warmup_pct=0.1))
    elif change == "views":
        other_set = nb.LocalGlobalPathMNIST(num_local=4, num_global=2)
    elif change == "data":
        other_set = nb.subset(dataset, 100)
    assert other.checkpoint(other_set, other_schedules, out_dim=256) != path
    assert json.loads(path.with_suffix(".json").read_text())["recipe"] == {"teacher_temp": 0.02, "lr_scale": 0.0625}


def test_training_records_every_loss_saves_and_resumes_exactly(nb, tmp_path):
    first = tiny_trainer(nb, tmp_path / "ckpt.pth")
    epochs = []
    encoder = first.train(1, on_epoch=epochs.append)
    assert encoder is first.teacher.model.encoder and epochs == [1]
    assert first.steps == 2 and len(first.history) == 2 and len(first.health) == 2
    second = tiny_trainer(nb, tmp_path / "ckpt.pth")
    second.train(1, resume=True)
    assert second.steps == 2 and second.history == first.history
    batch = torch.randn(4, 4, 3, 28, 28)
    assert float(second.training_step(batch)) == pytest.approx(float(first.training_step(batch)), abs=1e-5)


def test_the_recipe_scales_the_learning_rate_and_fixes_the_teacher_temperature(nb):
    recipe = Recipe.short_run(16)
    made = schedules(nb, recipe)
    for schedule in made.values():
        schedule.init(100)
    plain = nb.CosineSchedule(5e-4, 2e-4, warmup_pct=0.1)
    plain.init(100)
    assert made["lr_schedule"](50) == pytest.approx(plain(50) * 16 / 256)
    assert {made["teacher_temp_schedule"](s) for s in (0, 50, 99)} == {0.02}


def test_the_shipped_reference_runs_are_complete_and_checked(tmp_path, monkeypatch):
    manifest = reference_runs.verify(reference_runs.run_folder("dino-long"))
    assert set(manifest) == {"teacher.pt", "health.pt", "curve.json"}
    assert manifest["teacher.pt"]["bytes"] < 12 << 20  # half precision: small enough for the kit
    assert set(reference_runs.verify(reference_runs.run_folder("dino-quick-original"))) == {"health.pt", "curve.json"}
    curve = reference_runs.load_curve("dino-long")
    assert curve["curve"][0]["images_seen"] == 0 and curve["curve"][-1]["epoch"] == curve["recipe"]["epochs"]
    assert "healthy" in curve["health"]
    assert reference_runs.load_curve("dino-quick-original")["health"].startswith("uniform collapse")
    broken = tmp_path / "dino-long"
    shutil.copytree(reference_runs.run_folder("dino-long"), broken)
    (broken / "health.pt").write_bytes(b"not the record")
    monkeypatch.setattr(reference_runs, "REFERENCE_DIR", tmp_path)
    with pytest.raises(DataError, match="health.pt is damaged: md5"):
        reference_runs.load_health("dino-long")


def test_the_reference_teacher_loads_into_the_notebooks_model(nb):
    model = reference_runs.load_teacher(nb.ViTTinyDINO(256), "dino-long")
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    assert model(torch.zeros(2, 3, 28, 28)).shape == (2, 256)


def test_the_figures_draw_what_they_are_given(nb):
    data = nb.subset(PathMNIST(split="train", transform=nb.transforms.Compose([
        nb.transforms.ToTensor(), nb.LocalGlobalPathMNIST.NORMALIZE])), 60)
    feats = torch.nn.functional.normalize(torch.randn(len(data), 8), dim=-1)
    assert len(figures.class_subsets(data)) == 9 and sum(len(s) for s in figures.class_subsets(data)) == 60
    figures.retrieval_grid({"a": (feats, feats), "b": (feats, feats)}, data, data, n_queries=3, k=2)
    figures.feature_map({"a": feats}, data)
    counts = torch.bincount(torch.randint(0, 5, (60,)), minlength=16)
    figures.pseudo_label_ranks({"a": counts})
    figures.pseudo_label_heatmap(torch.randint(0, 4, (9, 16)), data, "a")
    figures.pseudo_label_examples(torch.randint(0, 3, (60,)), data, "a")


@pytest.mark.slow
def test_the_reference_run_command_makes_a_complete_run(tmp_path):
    """The command that made the shipped runs, on 32 images for 2 epochs."""
    done = subprocess.run([sys.executable, "-m", "dinolab.dino_reference", "--epochs", "2", "--eval-every", "1",
                           "--limit", "32", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = reference_runs.verify(tmp_path / "run")
    assert set(manifest) == {"teacher.pt", "health.pt", "curve.json"}
    curve = json.loads((tmp_path / "run" / "curve.json").read_text())
    assert [p["epoch"] for p in curve["curve"]] == [0, 1, 2] and curve["recipe"]["train_images"] == 32


@pytest.mark.slow
def test_the_gpu_check_runs_on_a_cpu_in_a_tiny_call():
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--steps", "2", "--warmup", "1",
                           "--batch-size", "8"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seconds per step" in done.stdout and "projected 15-epoch run" in done.stdout


def test_a_checkpoint_belongs_to_the_students_code(nb, tmp_path, monkeypatch):
    monkeypatch.setenv("DINO_RESULTS", str(tmp_path))
    budget = setup(mode="quick", quiet=True)
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=2)

    def path_with(body):
        namespace = {}
        exec(f"class DINOLoss:\n    def forward(self, x):\n        {body}\n", namespace)  # noqa: S102
        return budget.checkpoint(dataset, schedules(nb), code=(namespace["DINOLoss"],), out_dim=256)

    assert path_with("return x + 1") == path_with("return x + 1")
    assert path_with("return x + 1") != path_with("return x + 2")
