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
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dinocourse import distillation
from dinocourse.data import PATHMNIST_MEAN, PATHMNIST_STD, PathMNIST
from dinocourse.views import BatchedViews
from dinolab.code import Code, load
from dinolab.config import parse_schedule

MEAN = torch.tensor(PATHMNIST_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(PATHMNIST_STD).view(1, 3, 1, 1)


def results_root() -> Path:
    return Path(os.environ.get("DINO_RESULTS", "results"))


def run_name(config: dict) -> str:
    if config["name"]:
        return config["name"]
    setting = "random-teacher" if config["t_mode"] == "no_update" else "dino"
    extra = f"-{config['s_init']}" + (f"{config['s_init_alpha']:g}" if config["s_init"] == "interpolated" else "")
    return f"{setting}-{config['enc']}{extra}{'-noise' if config['noise_inputs'] else ''}-seed{config['seed']}"


def load_split(split: str, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28, 3) and labels (N,) of a split; at most ``limit``, drawn at random."""
    data = PathMNIST(split=split)
    images, labels = torch.from_numpy(data.imgs), torch.from_numpy(data.labels).view(-1).long()
    if limit is not None and len(images) > limit:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:limit]
        images, labels = images[keep], labels[keep]
    return images, labels


def normalize(images: torch.Tensor) -> torch.Tensor:
    return (images.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD


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


def features(model, images: torch.Tensor, device, batch_size: int = 512) -> torch.Tensor:
    """Encoder features of uint8 images (the notebook's given ``dinocourse.distillation.features``)."""
    return distillation.features(model, normalize(images), device, batch_size)


def probe(code: Code, model, data: dict, config: dict, device) -> dict:
    rt = code.random_teachers
    train_f, test_f = features(model, data["train_x"], device), features(model, data["test_x"], device)
    knn, n = 0.0, len(test_f)
    for i in range(0, n, 1024):
        part = slice(i, i + 1024)
        knn += rt.knn_accuracy(train_f, data["train_y"], test_f[part], data["test_y"][part],
                               k=config["probing_k"]) * len(test_f[part]) / n
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6
    with torch.random.fork_rng(devices=[]):  # the same initial probe for every model: only the features differ
        torch.manual_seed(config["seed"])
        layer = rt.train_linear_probe((train_f - mean) / std, data["train_y"], int(data["train_y"].max()) + 1,
                                      epochs=config["probing_epochs"], batch_size=config["probing_bs"],
                                      seed=config["seed"])
    return {"knn": knn, "linear": rt.probe_accuracy(layer, (test_f - mean) / std, data["test_y"])}


class _Done(Exception):
    """n_steps reached within an epoch."""


def run(config: dict, out: Path | None = None, progress: bool = True) -> Path:
    """Train one configuration; returns the run's folder."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    out = Path(out) if out is not None else results_root() / run_name(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    device = torch.device("cuda" if torch.cuda.is_available() and not config["force_cpu"] else "cpu")
    code = load(config["code"])
    rt = code.random_teachers
    seed = config["seed"]
    train_x, train_y = load_split("train", config["n_samples"], seed)
    test_x, test_y = load_split("test", config["n_eval"], seed)
    data = {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
    batches = Batches(train_x, config, device)
    if len(batches) == 0:
        raise ValueError(f"bs_train {config['bs_train']} is larger than the {len(train_x)} training images")

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
        teacher = rt.FrozenTeacher(teacher_net)
    else:
        teacher = code.dino.EMAWrapper(student, teacher_net)
    steps_per_epoch = len(batches)
    total = min(config["n_epochs"] * steps_per_epoch, config["n_steps"] or math.inf)
    epochs = math.ceil(total / steps_per_epoch)
    sched = {k: schedule(code, config[k], k, int(total)) for k in ("t_mom", "t_temp", "opt_lr", "opt_wd")}
    lr_scale = config["bs_train"] / 256
    if config["t_cmom"] is not None:
        dino_loss = code.dino.DINOLoss(config["out_dim"], batches.num_global, batches.num_local, config["s_temp"],
                                       config["t_cmom"]).to(device)
        loss_fn = lambda s, t: dino_loss(s, t, float(sched["t_temp"](state["step"])))  # noqa: E731
        teacher_fn = GlobalViewsOnly(teacher, batches.num_global, batches.num_views)
    else:
        loss_fn = rt.DistillationLoss(batches.num_views, config["loss"], config["loss_pairing"], config["s_temp"],
                                      float(sched["t_temp"](0)))
        teacher_fn = teacher
    optimizer = optimizer_of(config, [p for p in student.parameters() if p.requires_grad], 0.0)
    step_with = ClippedSteps(optimizer, config["clip_grad"]) if config["clip_grad"] else optimizer
    state = {"step": 0}

    def set_hyperparameters():
        step = state["step"]
        for group in optimizer.param_groups:
            group["lr"] = float(sched["opt_lr"](step)) * lr_scale
            group["weight_decay"] = float(sched["opt_wd"](step))
        if config["t_mode"] == "ema":
            teacher.momentum = float(sched["t_mom"](step))
        if config["t_cmom"] is None:
            loss_fn.teacher_temp = float(sched["t_temp"](step))

    bar = tqdm(total=int(total), desc=run_name(config), disable=not progress, unit="step")
    losses: list[float] = []

    def on_step(loss: float):
        if config["t_mode"] == "ema":
            teacher.update(student)
        losses.append(loss)
        state["step"] += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", epoch=state["epoch"])
        if state["step"] >= total:
            raise _Done
        set_hyperparameters()

    metrics = [{"epoch": 0, "step": 0, "loss": None, "raw_pixels": probe(code, None, data, config, device),
                "student": probe(code, student, data, config, device),
                "teacher": probe(code, teacher_net, data, config, device)}]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    set_hyperparameters()
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        state["epoch"] = epoch
        first = len(losses)
        try:
            rt.distill_epoch(student, teacher_fn, loss_fn, batches, step_with, on_step=on_step)
        except _Done:
            pass
        entry = {"epoch": epoch, "step": state["step"], "loss": float(np.mean(losses[first:])),
                 "seconds": round(time.perf_counter() - start, 1)}
        if epoch % config["probe_every"] == 0 or epoch == epochs:
            entry["student"] = probe(code, student, data, config, device)
            entry["teacher"] = probe(code, teacher_net, data, config, device)
        metrics.append(entry)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        if config["save_ckpt"]:
            torch.save({"epoch": epoch, "step": state["step"], "student": student.state_dict(),
                        "teacher": teacher_net.state_dict(), "optimizer": optimizer.state_dict(), "config": config},
                       out / "checkpoint.pt")
    bar.close()
    (out / "losses.json").write_text(json.dumps(losses) + "\n")
    plot(metrics, losses, config, out)
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
