"""The experiment bench of Assignment 2 (given code): images as tensors, batches of one view, the two probes of an
encoder's features, BatchNorm statistics re-estimated on images, and a distillation run. It runs *your* functions:
:class:`Lab` takes the notebook's definitions (``DistillationModel``, ``DistillationLoss``, ``distill_epoch``,
``knn_accuracy``, ``train_linear_probe``, ``probe_accuracy``) and calls them as the experiments need.

The course's reference results (:mod:`dinocourse.reference_runs`) are the same notebook run for several seeds, so
that a student's run can be judged against the spread of runs made with exactly its settings.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from dinocourse.data import PATHMNIST_MEAN, PATHMNIST_STD, PathMNIST

PROBES = ("k-NN", "linear")


MEAN = torch.tensor(PATHMNIST_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(PATHMNIST_STD).view(1, 3, 1, 1)


def load_images(split: str, limit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28, 3) and labels (N,) of a split; at most ``limit`` of them, drawn at random."""
    data = PathMNIST(split=split)
    images, labels = torch.from_numpy(data.imgs), torch.from_numpy(data.labels).view(-1).long()
    if limit is not None and len(images) > limit:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:limit]
        images, labels = images[keep], labels[keep]
    return images, labels


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28, 3) as normalized floats (N, 3, 28, 28) (PathMNIST's channel mean and std)."""
    return (images.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD


def load_split(split: str, limit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized images (N, 3, 28, 28) and labels (N,) of a split; at most ``limit`` of them, drawn at random."""
    images, labels = load_images(split, limit, seed)
    return normalize(images), labels


class ViewBatches:
    """Shuffled batches of one view per image, shaped (1, B, 3, 28, 28), on the device; the last incomplete batch
    is dropped (BatchNorm needs more than one image). noise=True: Gaussian noise of the same shape instead."""

    def __init__(self, images, batch_size, noise=False, seed=0, device="cpu"):
        self.images, self.batch_size, self.noise, self.device = images, batch_size, noise, device
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.images) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.images), generator=self.generator)
        for b in range(len(self)):
            x = self.images[order[b * self.batch_size:(b + 1) * self.batch_size]]
            if self.noise:
                x = torch.randn(x.shape, generator=self.generator)
            yield x.unsqueeze(0).to(self.device)


@torch.no_grad()
def features(model, images: torch.Tensor, device="cpu", batch_size: int = 512) -> torch.Tensor:
    """Encoder features (``model.embed``) in evaluation mode, on the CPU; ``None``: the raw pixels. Every layer's
    mode is restored afterwards (a frozen teacher's BatchNorm stays in evaluation mode whatever its wrapper says)."""
    if model is None:
        return images.flatten(1)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    out = torch.cat([model.embed(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])
    for module, mode in modes:
        module.training = mode
    return out


def batchnorm_layers(model) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def with_batchnorm_statistics_of(model, images: torch.Tensor, batch_size: int, seed: int = 0, device="cpu"):
    """A copy of ``model`` whose BatchNorm layers have re-estimated their running statistics on the images (the plain
    average over shuffled batches of ``batch_size``, forward passes in training mode); no weight changes. Returned in
    evaluation mode. A model without BatchNorm comes back as an unchanged copy."""
    model = copy.deepcopy(model)
    for layer in batchnorm_layers(model):
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches
    model.train()
    for x in ViewBatches(images, batch_size, seed=seed, device=device):
        model(x[0])
    return model.eval()


@torch.no_grad()
def batchnorm_inputs(model, images: torch.Tensor) -> list[dict]:
    """For every BatchNorm layer of ``model`` (in evaluation mode): the per-channel mean and variance of what enters
    it on ``images``, next to its running statistics."""
    layers, seen = batchnorm_layers(model), {}
    hooks = [layer.register_forward_hook(lambda m, x, y, i=i: seen.__setitem__(i, x[0])) for i, layer in
             enumerate(layers)]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
        for module, mode in modes:
            module.training = mode
    dims = lambda x: [0] + list(range(2, x.dim()))  # noqa: E731 - every axis but the channels
    return [{"mean": seen[i].mean(dims(seen[i])).cpu(), "var": seen[i].var(dims(seen[i])).cpu(),
             "running_mean": layer.running_mean.cpu(), "running_var": layer.running_var.cpu()}
            for i, layer in enumerate(layers)]


@torch.no_grad()
def distance(model, reference) -> float:
    """Relative distance of two networks' weights: ||theta - theta_ref|| / ||theta_ref|| over all parameters."""
    diff = sum(((p - q) ** 2).sum() for p, q in zip(model.parameters(), reference.parameters(), strict=True))
    norm = sum((q ** 2).sum() for q in reference.parameters())
    return float((diff / norm).sqrt())


def probe(code, model, data, *, k: int, epochs: int, batch_size: int, seed: int, device="cpu",
          num_classes: int | None = None) -> dict[str, float]:
    """k-NN and linear-probe accuracy of a model's encoder features (``None``: the raw pixels), with the notebook's
    ``knn_accuracy``, ``train_linear_probe`` and ``probe_accuracy`` from ``code`` (a mapping of names: ``globals()``,
    a module's ``vars()``). ``data`` is ``(train_x, train_y, test_x, test_y)`` (normalized images); the linear probe
    sees features standardized with the training features' statistics and starts from the same weights (``seed``)
    whatever the model. ``num_classes``: ``None`` for the training labels' largest + 1."""
    train_x, train_y, test_x, test_y = data
    train_f, test_f = features(model, train_x, device), features(model, test_x, device)
    knn = 0.0
    for i in range(0, len(test_f), 1024):  # chunks, so that the distances of full PathMNIST fit in memory
        part = slice(i, i + 1024)
        knn += code["knn_accuracy"](train_f, train_y, test_f[part], test_y[part], k) * len(test_f[part]) / len(test_f)
    mean, std = train_f.mean(dim=0), train_f.std(dim=0) + 1e-6
    num_classes = int(train_y.max()) + 1 if num_classes is None else num_classes
    with torch.random.fork_rng(devices=[]):  # the same initial probe for every model: only the features differ
        torch.manual_seed(seed)
        layer = code["train_linear_probe"]((train_f - mean) / std, train_y, num_classes, epochs, batch_size, seed=seed)
    return {"k-NN": float(knn), "linear": float(code["probe_accuracy"](layer, (test_f - mean) / std, test_y))}


@dataclass
class Settings:
    """Every setting of one run of Assignment 2's experiments."""
    encoder: str
    hidden_dims: tuple
    bottleneck: int
    out_dim: int
    epochs: int
    batch_size: int
    lr: float
    k: int
    probe_epochs: int
    probe_batch: int
    seed: int
    loss: str = "KL"

    def as_dict(self) -> dict:
        return {**asdict(self), "hidden_dims": list(self.hidden_dims)}


class Lab:
    """The experiments' bench: ``code`` holds your notebook's definitions (``globals()``, or a module's ``vars()``);
    ``data`` is ``(train_x, train_y, test_x, test_y)``: the probes train on the first pair and measure on the second
    (the test split in the notebook; the validation split where a recipe is chosen)."""

    def __init__(self, code, settings: Settings, data, device="cpu", num_classes: int = 9):
        self.code, self.settings, self.device, self.num_classes = code, settings, torch.device(device), num_classes
        self.train_x, self.train_y, self.test_x, self.test_y = data

    def model(self, seed: int):
        """A fresh random network (encoder + head) of the settings, drawn with ``seed``."""
        s = self.settings
        torch.manual_seed(seed)
        return self.code["DistillationModel"](s.encoder, s.out_dim, s.hidden_dims, s.bottleneck).to(self.device)

    def probe(self, model) -> dict[str, float]:
        """k-NN and linear-probe accuracy of a model's encoder features (``None``: the raw pixels)."""
        s = self.settings
        return probe(self.code, model, (self.train_x, self.train_y, self.test_x, self.test_y), k=s.k,
                     epochs=s.probe_epochs, batch_size=s.probe_batch, seed=s.seed, device=self.device,
                     num_classes=self.num_classes)

    def recalibrated(self, model):
        """``model`` (or a FrozenTeacher's network) with BatchNorm statistics of the training images; no training."""
        return with_batchnorm_statistics_of(getattr(model, "model", model), self.train_x, self.settings.batch_size,
                                            self.settings.seed, self.device)

    def batches(self, noise: bool = False) -> ViewBatches:
        return ViewBatches(self.train_x, self.settings.batch_size, noise=noise, seed=self.settings.seed,
                           device=self.device)

    def distill(self, teacher, student, epochs: int | None = None, noise: bool = False, probe_every_epoch=False,
                on_step=None, progress=None) -> list[dict]:
        """Distil ``teacher`` into ``student`` with the paper's random-teacher setting (one view, pairing 'same',
        temperatures 1, no centering, AdamW without weight decay) and your ``distill_epoch``; the loss is the
        settings' (KL: the same gradient as CE, and 0 when the student matches the teacher). Returns one entry per
        epoch (epoch 0, before training, only with ``probe_every_epoch``): the mean loss, each step's loss, the
        probes (every epoch or at the end)."""
        s, code = self.settings, self.code
        loss_fn = code["DistillationLoss"](num_views=1, loss=s.loss, pairing="same", student_temp=1.0,
                                           teacher_temp=1.0)
        optimizer = torch.optim.AdamW(student.parameters(), lr=s.lr, weight_decay=0.0)
        loader = self.batches(noise)
        epochs = s.epochs if epochs is None else epochs
        history = [{"epoch": 0, "loss": None, "steps": [], **self.probe(student)}] if probe_every_epoch else []
        for epoch in range(1, epochs + 1):
            steps = []

            def record(loss, steps=steps):
                steps.append(loss)
                if callable(on_step):
                    on_step(loss)

            code["distill_epoch"](student, teacher, loss_fn, loader, optimizer, on_step=record)
            entry = {"epoch": epoch, "loss": float(np.mean(steps)), "steps": [float(v) for v in steps]}
            if probe_every_epoch or epoch == epochs:
                entry.update(self.probe(student))
            history.append(entry)
            if progress is not None:
                progress(entry)
        return history


def final(history: list[dict]) -> dict[str, float]:
    """The probes at the end of a distillation run."""
    return {key: history[-1][key] for key in PROBES}
