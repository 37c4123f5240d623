"""Seeded tiny inputs for the graders, and the reference values the solution gives on them.

Every function here takes a namespace (the reference solution's, or a student's unit on top of it) and returns
plain numbers. ``python -m autograder reference`` runs them on the solution notebook and writes
``reference_values.json``; the graders run the same functions on a submission and compare. No value in that file
is typed by hand, and a test fails when it is out of date.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

from dinocourse.data import SAMPLE_DIR, subset
from dinocourse.views import unnormalize  # noqa: F401 - the graders' import of it goes through here
from dinocourse.views import view_statistics as statistics_of_views

# ---- Part I: the head -------------------------------------------------------------------------------------------
HEAD_CONFIGS = [(10, 20), (64, 32, 4, 256, 16), (20, 10, 1), (12, 50, 2, 24, 6), (7, 9, 5, 11, 3), (192, 256)]


def to_float(value) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def head_parameter_counts(ns) -> dict[str, int]:
    """Trainable parameters of DINOHead(*config) for several configurations."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the older weight-norm API warns; it is still a correct answer
        return {str(config): trainable(ns.DINOHead(*config)) for config in HEAD_CONFIGS}


# ---- Part II: the loss ------------------------------------------------------------------------------------------
LOSS_CASES = {
    "2 global + 2 local, momentum 0.9": dict(out_dim=7, batch=5, num_global=2, num_local=2, student_temp=0.1,
                                             center_momentum=0.9, teacher_temps=[0.04, 0.05, 0.07], seed=1),
    "2 global + 4 local, momentum 0.5": dict(out_dim=6, batch=3, num_global=2, num_local=4, student_temp=0.1,
                                             center_momentum=0.5, teacher_temps=[0.07, 0.07], seed=2),
    "3 global + 1 local, student_temp 0.2, momentum 0": dict(out_dim=5, batch=4, num_global=3, num_local=1,
                                                             student_temp=0.2, center_momentum=0.0,
                                                             teacher_temps=[0.05, 0.1], seed=3),
    "4 global + 1 local, momentum 0.99": dict(out_dim=9, batch=2, num_global=4, num_local=1, student_temp=0.1,
                                              center_momentum=0.99, teacher_temps=[0.1, 0.04], seed=4),
}


def loss_inputs(case: dict, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher outputs (view-major, flattened) for one step of a loss case."""
    gen = torch.Generator().manual_seed(case["seed"] * 100 + step)
    n_views = case["num_global"] + case["num_local"]
    student = 2 * torch.randn(n_views * case["batch"], case["out_dim"], generator=gen)
    teacher = 2 * torch.randn(case["num_global"] * case["batch"], case["out_dim"], generator=gen)
    return student, teacher


def loss_trace(ns, case: dict) -> list[dict]:
    """Loss value and center after every step of a case, from a fresh DINOLoss."""
    loss = ns.DINOLoss(case["out_dim"], num_global=case["num_global"], num_local=case["num_local"],
                       student_temp=case["student_temp"], center_momentum=case["center_momentum"])
    trace = []
    for step, temp in enumerate(case["teacher_temps"]):
        student, teacher = loss_inputs(case, step)
        value = loss(student, teacher, temp)
        trace.append({"teacher_temp": temp, "loss": to_float(value),
                      "center": [float(x) for x in torch.as_tensor(loss.center).detach().flatten()]})
    return trace


# ---- Part III: the views ----------------------------------------------------------------------------------------
VIEW_IMAGES = 256         # images whose views one statistic is taken over
VIEW_SEEDS = range(12)    # seeds the reference spread is estimated from
VIEW_TOLERANCE = 4.0      # a statistic may lie this many reference standard deviations from the reference mean
VIEW_FLOOR = {"brightness": 0.01, "roughness": 0.003, "solarized": 0.03}  # smallest tolerance of each statistic


def view_statistics(ns, seed: int, reference_normalize) -> dict[str, dict[str, float]]:
    """Per kind of view (global 1, global 2, local): mean brightness, roughness and share of solarized views.

    Views are undone with the *reference* normalization (``reference_normalize``), so a view that was not normalized
    (or normalized twice) shows up as a wrong brightness. Roughness is the mean absolute difference of vertically
    neighboring pixels (blur and zoomed-in crops lower it); a view counts as solarized when no pixel is above 0.5.
    """
    torch.manual_seed(seed)
    dataset = ns.LocalGlobalPathMNIST(num_local=2, num_global=2, root=SAMPLE_DIR)
    views = torch.stack([dataset[i] for i in range(VIEW_IMAGES)])  # (images, 4, 3, 28, 28)
    return statistics_of_views(unnormalize(views, reference_normalize))


def view_reference(ns) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and tolerance of every view statistic over ``VIEW_SEEDS``."""
    runs = [view_statistics(ns, seed, ns.LocalGlobalPathMNIST.NORMALIZE) for seed in VIEW_SEEDS]
    out = {}
    for kind in runs[0]:
        out[kind] = {}
        for stat in runs[0][kind]:
            values = torch.tensor([run[kind][stat] for run in runs])
            out[kind][stat] = {"mean": float(values.mean()),
                               "tolerance": max(VIEW_TOLERANCE * float(values.std()), VIEW_FLOOR[stat])}
    return out


# ---- Part IV: schedules and trainer -----------------------------------------------------------------------------
SCHEDULES = ("lr_schedule", "wd_schedule", "teacher_temp_schedule", "ema_schedule")
SCHEDULE_TOTALS = (100, 37)


def schedule_values(ns, total: int) -> dict[str, list[float]]:
    """The value of each of the four schedules at every step of a run of ``total`` steps."""
    out = {}
    for name in SCHEDULES:
        schedule = getattr(ns, name)
        schedule.init(total)
        out[name] = [float(schedule(step)) for step in range(total)]
    return out


TRAINER_STEPS = (2, 3)     # step numbers of the two training steps (the warm-up starts the lr at 0)
TRAINER_TOTAL = 8          # steps the schedules are initialized for
TRAINER_DEPTH = 1          # transformer blocks of the ViT in the trainer's checks (the given vit_tiny has 12)


def trainer_schedules(ns) -> dict:
    return dict(lr_schedule=ns.CosineSchedule(1e-3, 1e-4, warmup_pct=0.25),
                wd_schedule=ns.CosineSchedule(0.02, 0.04),
                teacher_temp_schedule=ns.CosineSchedule(0.07, 0.07, warmup_pct=0.25, start_warmup_value=0.04),
                teacher_ema_schedule=ns.CosineSchedule(0.9, 0.99))


@contextlib.contextmanager
def small_vit(ns):
    """While a trainer is made, the given ViTTinyDINO builds a ViT of TRAINER_DEPTH block(s) instead of 12.

    The trainer under test calls ``ViTTinyDINO(out_dim)`` (given code, the reference's while it is graded), whose
    ``vit_tiny()`` is the one thing replaced: every step of the trainer's logic is the same, the checks ten times
    faster.
    """
    scope = ns.ViTTinyDINO.__init__.__globals__
    original, args = scope["vit_tiny"], {**scope["vit_tiny_args"], "depth": TRAINER_DEPTH}
    scope["vit_tiny"] = lambda: scope["VisionTransformer"](**args)
    try:
        yield
    finally:
        scope["vit_tiny"] = original


_START_WEIGHTS: dict = {}


def start_weights(model_class, out_dim: int) -> dict:
    """The weights every trainer under test starts from: a ViTTinyDINO made after torch.manual_seed(1) (cached)."""
    key = (model_class, out_dim, TRAINER_DEPTH)
    if key not in _START_WEIGHTS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            _START_WEIGHTS[key] = {k: v.clone() for k, v in model_class(out_dim).state_dict().items()}
    return _START_WEIGHTS[key]


def make_trainer(ns, ckpt, n_images=8, batch_size=4, out_dim=16):
    """A DINOTrainer on a few sample images, with every implementation starting from the same weights."""
    torch.manual_seed(0)
    dataset = subset(ns.LocalGlobalPathMNIST(num_local=2, num_global=2, root=SAMPLE_DIR), n_images)
    with small_vit(ns):
        trainer = ns.DINOTrainer(dataset=dataset, batch_size=batch_size, out_dim=out_dim, ckpt_name=ckpt,
                                 **trainer_schedules(ns))
        start = start_weights(ns.ViTTinyDINO, out_dim)  # whatever order the trainer builds its modules in
    trainer.student.load_state_dict(start)
    trainer.teacher.model.load_state_dict(start)
    for schedule in (trainer.lr_schedule, trainer.wd_schedule, trainer.teacher_temp_schedule,
                     trainer.teacher_ema_schedule):
        schedule.init(TRAINER_TOTAL)
    return trainer


def fixed_batch(batch_size=4, n_views=4) -> torch.Tensor:
    """A batch of views, view-major: (views, batch, 3, 28, 28)."""
    return torch.randn(n_views, batch_size, 3, 28, 28, generator=torch.Generator().manual_seed(7))


def trainer_trace(ns, ckpt) -> dict:
    """Losses of two training steps on a fixed batch, and the loss's center after them."""
    trainer = make_trainer(ns, ckpt)
    losses = []
    for step in TRAINER_STEPS:
        trainer.steps = step
        losses.append(to_float(trainer.training_step(fixed_batch())))
    return {"losses": losses, "center": [float(x) for x in trainer.dino_loss.center.flatten()]}


# ---- Part VI: pseudo-labels -------------------------------------------------------------------------------------
def pseudo_label_case(ns) -> list[int]:
    """Pseudo-label counts of a seeded random linear model on 45 seeded random images, in batches of 8."""
    from torch import nn
    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(5)
    images = torch.randn(45, 3, 28, 28, generator=gen)
    dataset = TensorDataset(images, torch.zeros(45, 1, dtype=torch.long))
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 12))
    return [int(c) for c in ns.pseudo_label_counts(model, dataset, torch.device("cpu"), batch_size=8)]


# ---- the file -----------------------------------------------------------------------------------------------------
def generate(ns, workdir: Path) -> dict:
    """Every reference value, by unit, computed with the definitions in ``ns`` (the solution's)."""
    return {
        "dino_head": {"parameter_counts": head_parameter_counts(ns)},
        "dino_loss": {name: loss_trace(ns, case) for name, case in LOSS_CASES.items()},
        "local_global_dataset": view_reference(ns),
        "schedules": {str(total): schedule_values(ns, total) for total in SCHEDULE_TOTALS},
        "dino_trainer": trainer_trace(ns, Path(workdir) / "reference.pth"),
        "pseudo_labels": {"counts": pseudo_label_case(ns)},
    }
