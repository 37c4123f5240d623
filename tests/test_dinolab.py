"""The experiment bed: configuration precedence and errors, one run's folder, parallel runs (processes and submitit's
local executor), and no algorithm of its own (it runs the solution notebooks' code)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from autograder.assignment.course import COURSE_ROOT
from autograder.commands import venv_env
from dinolab.config import GROUPS, OPTIONS, ConfigError, defaults, resolve

TINY = ["--n_samples", "32", "--n_eval", "24", "--bs_train", "16", "--out_dim", "32", "--hid_dims", "16",
        "--l2bot_dim", "8", "--probing_epochs", "1", "--probing_bs", "16", "--threads", "1"]


def dinolab(*args, results, timeout=900):
    env = {**venv_env(), "DINO_RESULTS": str(results), "DINO_DATA": str(COURSE_ROOT / "data" / "sample")}
    return subprocess.run([sys.executable, "-m", "dinolab", *map(str, args)], capture_output=True, text=True,
                          cwd=COURSE_ROOT, env=env, timeout=timeout)


def test_defaults_are_assignment_1s_full_dino_and_the_configs_resolve():
    config = resolve([])
    assert (config["enc"], config["t_mode"], config["t_cmom"], config["loss_pairing"]) == ("vit_tiny", "ema", 0.9,
                                                                                           "opposite")
    dino = resolve(["--from_json", str(COURSE_ROOT / "configs" / "dino.json")])
    assert {k: v for k, v in dino.items() if k != "code"} == {k: v for k, v in config.items() if k != "code"}
    for name in ("random_teacher.json", "random_teacher_sample.json"):
        rt = resolve(["--from_json", str(COURSE_ROOT / "configs" / name)])
        assert (rt["t_mode"], rt["t_cmom"], rt["loss_pairing"], rt["mc"], rt["augs"]) == ("no_update", None, "same",
                                                                                          "1x28", "none")


def test_flags_override_the_json_which_overrides_the_defaults(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"t_mode": "no_update", "t_cmom": None, "loss_pairing": "same", "n_epochs": 3,
                                "enc": "resnet18"}))
    config = resolve(["--from_json", str(path), "--n_epochs", "5", "--enc", "vgg11", "--hid_dims", "64,32",
                      "--t_temp", "cos(0.04,0.07,warmup=0.2)", "--clip_grad", "null"])
    assert (config["n_epochs"], config["enc"], config["t_mode"], config["hid_dims"]) == (5, "vgg11", "no_update",
                                                                                         [64, 32])
    assert config["s_temp"] == defaults()["s_temp"] and config["clip_grad"] is None


@pytest.mark.parametrize("argv,message", [
    (["--enc", "alexnet"], "enc: expected one of"),
    (["--n_epochs", "1.5"], "n_epochs: expected int"),
    (["--t_temp", "warm(1)"], "t_temp: expected a number or cos("),
    (["--loss", "KL"], "centering (t_cmom) is Assignment 1's DINOLoss"),
    (["--mc", "1x28", "--augs", "none", "--t_cmom", "null"], "loss_pairing 'opposite' needs at least two views"),
])
def test_bad_values_are_clear_errors(argv, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(argv)


def test_unknown_options_are_errors(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"n_epoch": 3}))
    with pytest.raises(ConfigError, match="unknown option.*n_epoch"):
        resolve(["--from_json", str(path)])
    with pytest.raises(ConfigError, match="no such file"):
        resolve(["--from_json", str(tmp_path / "missing.json")])
    result = dinolab("--n_epoch", "3", results=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --n_epoch" in result.stderr


def test_help_lists_every_option_by_group(tmp_path):
    result = dinolab("--help", results=tmp_path)
    assert result.returncode == 0
    for group in GROUPS:
        assert f"\n{group}:\n" in result.stdout
    for option in OPTIONS:
        assert f"--{option.name} " in result.stdout


def test_the_bed_writes_no_algorithm_of_its_own():
    from dinolab.code import load

    code = load()
    assert code.dino.__file__.endswith("solutions/01_dino/dino.ipynb")
    assert code.random_teachers.__file__.endswith("solutions/02_random_teachers/random_teachers.ipynb")
    source = "".join(p.read_text() for p in (COURSE_ROOT / "dinolab").glob("*.py"))
    for algorithm in ("log_softmax", "softmax(", "cdist", "topk", "cross_entropy", ".mode("):
        assert algorithm not in source, f"dinolab computes {algorithm} itself"


def fresh_teacher_state(config: dict) -> dict:
    """The weights and statistics of the run's teacher as it was made (the bed seeds it with the run's seed)."""
    from dinolab.code import load

    torch.manual_seed(config["seed"])
    model = load().random_teachers.DistillationModel(config["enc"], config["out_dim"], config["hid_dims"],
                                                     config["l2bot_dim"])
    return model.state_dict()


@pytest.mark.slow
def test_one_random_teacher_run_writes_its_folder(tmp_path):
    result = dinolab("--from_json", COURSE_ROOT / "configs" / "random_teacher_sample.json", *TINY, "--n_epochs", 2,
                     "--name", "rt", results=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "rt"
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.json", "losses.json", "checkpoint.pt",
                                               "loss.png", "probes.png"}
    config = json.loads((out / "config.json").read_text())
    assert config["enc"] == "vgg11_bn" and config["n_epochs"] == 2 and config["t_mode"] == "no_update"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [0, 1, 2] and metrics[2]["step"] == 2 * (32 // 16)
    assert all(0 <= m[who][probe] <= 1 for m in metrics for who in ("student", "teacher")
               for probe in ("knn", "linear"))
    # the frozen teacher never changes (probing it must not switch its BatchNorm to training mode): its probes are
    # the same before and after; the student starts as its copy, so its probes start as the teacher's
    assert metrics[0]["teacher"] == metrics[1]["teacher"] == metrics[2]["teacher"]
    assert metrics[0]["student"] == metrics[0]["teacher"]
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    assert all(saved["teacher"][k].equal(v) for k, v in fresh_teacher_state(config).items())
    assert len(json.loads((out / "losses.json").read_text())) == 4


@pytest.mark.slow
def test_assignment_1s_dino_runs_in_the_bed(tmp_path):
    result = dinolab("--from_json", COURSE_ROOT / "configs" / "dino.json", *TINY, "--bs_train", 8, "--n_steps", 2,
                     "--name", "dino", "--probe_every", 5, results=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "dino" / "metrics.json").read_text())
    assert metrics[-1]["step"] == 2 and metrics[-1]["loss"] > 0
    # the EMA teacher moves with the student (its probes are computed on its own weights)
    assert "teacher" in metrics[-1]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["processes", "submitit"])
def test_a_sweep_runs_each_point_in_its_own_process_and_folder(tmp_path, executor):
    result = dinolab("sweep", "--from_json", COURSE_ROOT / "configs" / "random_teacher_sample.json", *TINY,
                     "--n_epochs", 1, "--grid", "seed=0,1", "--jobs", 2, "--executor", executor, results=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    folders = sorted(p.name for p in tmp_path.iterdir() if (p / "metrics.json").is_file())
    assert folders == ["random-teacher-vgg11_bn-teacher-seed0", "random-teacher-vgg11_bn-teacher-seed1"]
    summary = json.loads(next(tmp_path.glob("sweep-*.json")).read_text())
    assert [row["name"] for row in summary] == folders
    configs = [json.loads((tmp_path / f / "config.json").read_text()) for f in folders]
    assert [c["seed"] for c in configs] == [0, 1] and all(c["threads"] >= 1 for c in configs)


def test_the_bed_clips_the_gradients_before_each_step():
    """``clip_grad`` is the bed's own: the optimizer the notebook's loop gets clips the gradients' total norm first."""
    from dinolab.run import ClippedSteps

    param = torch.nn.Parameter(torch.zeros(3))
    steps = ClippedSteps(torch.optim.SGD([param], lr=1.0), max_norm=0.5)
    param.grad = torch.tensor([3.0, 4.0, 0.0])  # norm 5
    steps.step()
    assert torch.allclose(param.detach(), torch.tensor([-0.3, -0.4, 0.0]), atol=1e-6)
    steps.zero_grad()
    assert param.grad is None
