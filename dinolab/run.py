"""One run of the bed: data, networks, loss and optimizer from a configuration; distillation with probes before
training and after every ``probe_every`` epochs; everything written into the run's own folder::

    <DINO_RESULTS>/<name>/config.json      the resolved configuration (every option)
                          metrics.json     one entry per probe point: epoch, step, loss, k-NN and linear-probe
                                           accuracy of student and teacher (raw pixels once, for reference)
                          checkpoint.pt    student, teacher, optimizer, epoch (after every epoch)
                          loss.png, probes.png
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dinocourse import distillation
from dinocourse.data import PATHMNIST_MEAN, PATHMNIST_STD
from dinocourse.distillation import load_images, normalize
from dinocourse.views import BatchedViews
from dinolab.code import Code, load
from dinolab.config import parse_schedule


def results_root() -> Path:
    return Path(os.environ.get("DINO_RESULTS", "results"))


def run_name(config: dict) -> str:
    if config["name"]:
        return config["name"]
    setting = "random-teacher" if config["t_mode"] == "no_update" else "dino"
    extra = f"-{config['s_init']}" + (f"{config['s_init_alpha']:g}" if config["s_init"] == "interpolated" else "")
    return f"{setting}-{config['enc']}{extra}{'-noise' if config['noise_inputs'] else ''}-seed{config['seed']}"


class Batches:
    """Shuffled batches of views, view-major (V, B, 3, 28, 28), on the device; the last incomplete batch dropped."""

    def __init__(self, images, config: dict, device):
        self.images, self.device, self.bs = images, device, config["bs_train"]
        crops = [int(part.split("x")[0]) for part in config["mc"].split("+")]
        self.num_global, self.num_local = crops[0], sum(crops[1:])
        self.views = BatchedViews(self.num_global, self.num_local, PATHMNIST_MEAN, PATHMNIST_STD) \
            if config["augs"] == "dino" else None
        self.noise = config["noise_inputs"]
        self.generator = torch.Generator().manual_seed(config["seed"])

    @property
    def num_views(self) -> int:
        return self.num_global + self.num_local

    def __len__(self) -> int:
        return len(self.images) // self.bs

    def __iter__(self):
        order = torch.randperm(len(self.images), generator=self.generator)
        for b in range(len(self)):
            batch = self.images[order[b * self.bs:(b + 1) * self.bs]]
            if self.views is not None:
                views = self.views(batch).transpose(0, 1)
            else:
                views = normalize(batch).unsqueeze(0).expand(self.num_views, -1, -1, -1, -1)
            if self.noise:
                views = torch.randn(views.shape, generator=self.generator)
            yield views.contiguous().to(self.device)


class GlobalViewsOnly(torch.nn.Module):
    """DINO's teacher sees the global views only: the first ``num_global`` of the stacked views."""

    def __init__(self, teacher, num_global: int, num_views: int):
        super().__init__()
        self.teacher, self.num_global, self.num_views = teacher, num_global, num_views

    def forward(self, views):
        batch = len(views) // self.num_views
        return self.teacher(views[: self.num_global * batch])


def schedule(code: Code, spec, name: str, total_steps: int):
    """Assignment 1's CosineSchedule for a number or a ``cos(...)`` option value."""
    made = code.dino.CosineSchedule(**parse_schedule(spec, name))
    made.init(total_steps)
    return made


def optimizer_of(config: dict, params, lr: float):
    if config["opt"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config["opt_mom"])
    return (torch.optim.AdamW if config["opt"] == "adamw" else torch.optim.Adam)(params, lr=lr)


class ClippedSteps:
    """The optimizer, its gradients' total norm clipped to ``max_norm`` before every step (the bed's option
    ``clip_grad``; the notebook's loop knows nothing of it)."""

    def __init__(self, optimizer, max_norm: float):
        self.optimizer, self.max_norm = optimizer, max_norm

    def zero_grad(self, set_to_none: bool = True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self):
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        self.optimizer.step()


def probe(code: Code, model, data: tuple, config: dict, device) -> dict:
    """k-NN and linear-probe accuracy of a model's features (``None``: the raw pixels) with the notebook's probes:
    Assignment 2's given ``dinocourse.distillation.probe`` (``knn``: its ``k-NN``) on ``data`` (normalized train and
    test images with their labels); the classes are those the training labels reach."""
    accuracy = distillation.probe(vars(code.random_teachers), model, data, k=config["probing_k"],
                                  epochs=config["probing_epochs"], batch_size=config["probing_bs"],
                                  seed=config["seed"], device=device)
    return {"knn": accuracy["k-NN"], "linear": accuracy["linear"]}


class _Done(Exception):
    """n_steps reached within an epoch."""


def prepare(config: dict, out: Path | None) -> tuple[Path, torch.device]:
    """The run's threads, its folder (with config.json written) and its device."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    out = Path(out) if out is not None else results_root() / run_name(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out, torch.device("cuda" if torch.cuda.is_available() and not config["force_cpu"] else "cpu")


def load_data(config: dict) -> dict:
    """Training and evaluation images (uint8: the views are made from them) and labels, drawn with the run's seed."""
    train_x, train_y = load_images("train", config["n_samples"], config["seed"])
    test_x, test_y = load_images("test", config["n_eval"], config["seed"])
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


@dataclass
class Networks:
    teacher_net: torch.nn.Module  # the teacher's network: probed and saved
    student: torch.nn.Module
    teacher: torch.nn.Module  # what the loop calls: FrozenTeacher (t_mode no_update) or EMAWrapper (ema)


def networks(code: Code, config: dict, device) -> Networks:
    """Teacher and student as the notebooks make them: the student from the teacher and an independent random network
    (``s_init``), each network drawn with its own seed."""
    rt, seed = code.random_teachers, config["seed"]

    def model(model_seed):
        torch.manual_seed(model_seed)
        made = rt.DistillationModel(config["enc"], config["out_dim"], config["hid_dims"], config["l2bot_dim"])
        return made.to(device)

    teacher_net = model(config["t_init_seed"] if config["t_init_seed"] is not None else seed)
    random_net = model(config["s_init_seed"] if config["s_init_seed"] is not None else seed + 1000)
    student = rt.init_student(teacher_net, random_net, config["s_init"], alpha=config["s_init_alpha"],
                              eps=config["s_init_eps"], var_preserving=config["s_init_var_preserving"])
    del random_net
    if config["t_mode"] == "no_update":
        return Networks(teacher_net, student, rt.FrozenTeacher(teacher_net))
    return Networks(teacher_net, student, code.dino.EMAWrapper(student, teacher_net))


class Training:
    """The loss, optimizer and schedules of a run, and what follows each step of the notebook's ``distill_epoch``:
    the EMA update, the next step's hyperparameters, the progress bar; training stops after ``total`` steps."""

    def __init__(self, code: Code, config: dict, batches: Batches, nets: Networks, device, progress: bool):
        self.code, self.config, self.batches, self.nets = code, config, batches, nets
        self.total = min(config["n_epochs"] * len(batches), config["n_steps"] or math.inf)
        self.epochs = math.ceil(self.total / len(batches))
        self.sched = {k: schedule(code, config[k], k, int(self.total)) for k in ("t_mom", "t_temp", "opt_lr", "opt_wd")}
        self.lr_scale = config["bs_train"] / 256
        self.step, self.epoch, self.losses = 0, 0, []
        self.loss_fn, self.teacher_fn = self.objective(device)
        self.optimizer = optimizer_of(config, [p for p in nets.student.parameters() if p.requires_grad], 0.0)
        self.step_with = ClippedSteps(self.optimizer, config["clip_grad"]) if config["clip_grad"] else self.optimizer
        self.bar = tqdm(total=int(self.total), desc=run_name(config), disable=not progress, unit="step")

    def objective(self, device):
        """The loss and the teacher the loop calls: Assignment 1's DINOLoss (centering, ``t_cmom``) with the teacher
        on the global views only, else Assignment 2's DistillationLoss with the teacher on every view."""
        config, batches = self.config, self.batches
        if config["t_cmom"] is not None:
            dino_loss = self.code.dino.DINOLoss(config["out_dim"], batches.num_global, batches.num_local,
                                                config["s_temp"], config["t_cmom"]).to(device)
            loss_fn = lambda s, t: dino_loss(s, t, float(self.sched["t_temp"](self.step)))  # noqa: E731
            return loss_fn, GlobalViewsOnly(self.nets.teacher, batches.num_global, batches.num_views)
        loss_fn = self.code.random_teachers.DistillationLoss(batches.num_views, config["loss"], config["loss_pairing"],
                                                             config["s_temp"], float(self.sched["t_temp"](0)))
        return loss_fn, self.nets.teacher

    def set_hyperparameters(self) -> None:
        """Learning rate, weight decay, teacher momentum and temperature of the current step."""
        config, step = self.config, self.step
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.sched["opt_lr"](step)) * self.lr_scale
            group["weight_decay"] = float(self.sched["opt_wd"](step))
        if config["t_mode"] == "ema":
            self.nets.teacher.momentum = float(self.sched["t_mom"](step))
        if config["t_cmom"] is None:
            self.loss_fn.teacher_temp = float(self.sched["t_temp"](step))

    def on_step(self, loss: float) -> None:
        if self.config["t_mode"] == "ema":
            self.nets.teacher.update(self.nets.student)
        self.losses.append(loss)
        self.step += 1
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", epoch=self.epoch)
        if self.step >= self.total:
            raise _Done
        self.set_hyperparameters()

    def run_epoch(self, epoch: int) -> dict:
        """One epoch of the notebook's ``distill_epoch`` (cut short after ``total`` steps): its step and mean loss."""
        self.epoch, first = epoch, len(self.losses)
        try:
            self.code.random_teachers.distill_epoch(self.nets.student, self.teacher_fn, self.loss_fn, self.batches,
                                                    self.step_with, on_step=self.on_step)
        except _Done:
            pass
        return {"epoch": epoch, "step": self.step, "loss": float(np.mean(self.losses[first:]))}

    def checkpoint(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "student": self.nets.student.state_dict(),
                "teacher": self.nets.teacher_net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "config": self.config}


def probes(code: Code, nets: Networks, data: tuple, config: dict, device) -> dict:
    return {"student": probe(code, nets.student, data, config, device),
            "teacher": probe(code, nets.teacher_net, data, config, device)}


def run(config: dict, out: Path | None = None, progress: bool = True) -> Path:
    """Train one configuration; returns the run's folder."""
    out, device = prepare(config, out)
    code = load(config["code"])
    data = load_data(config)
    batches = Batches(data["train_x"], config, device)
    if len(batches) == 0:
        raise ValueError(f"bs_train {config['bs_train']} is larger than the {len(data['train_x'])} training images")
    nets = networks(code, config, device)
    training = Training(code, config, batches, nets, device, progress)
    probed = (normalize(data["train_x"]), data["train_y"], normalize(data["test_x"]), data["test_y"])  # once
    metrics = [{"epoch": 0, "step": 0, "loss": None, "raw_pixels": probe(code, None, probed, config, device),
                **probes(code, nets, probed, config, device)}]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    training.set_hyperparameters()
    start = time.perf_counter()
    for epoch in range(1, training.epochs + 1):
        entry = {**training.run_epoch(epoch), "seconds": round(time.perf_counter() - start, 1)}
        if epoch % config["probe_every"] == 0 or epoch == training.epochs:
            entry.update(probes(code, nets, probed, config, device))
        metrics.append(entry)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        if config["save_ckpt"]:
            torch.save(training.checkpoint(), out / "checkpoint.pt")
    training.bar.close()
    (out / "losses.json").write_text(json.dumps(training.losses) + "\n")
    plot(metrics, training.losses, config, out)
    return out


def plot(metrics: list[dict], losses: list[float], config: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(1, len(losses) + 1), losses, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{config['loss']} loss")
    ax.set_title(run_name(config))
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)
    probed = [m for m in metrics if "student" in m]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
    for ax, key in zip(axes, ("knn", "linear"), strict=True):
        epochs = [m["epoch"] for m in probed]
        ax.plot(epochs, [100 * m["student"][key] for m in probed], marker="o", label="student")
        ax.plot(epochs, [100 * m["teacher"][key] for m in probed], marker="x", label="teacher")
        ax.axhline(100 * metrics[0]["raw_pixels"][key], ls=":", color="gray", label="raw pixels")
        ax.set_title(f"{'k-NN' if key == 'knn' else 'linear'} probe")
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "probes.png", dpi=100)
    plt.close(fig)
