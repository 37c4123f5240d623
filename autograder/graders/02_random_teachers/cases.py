"""Seeded tiny inputs for the graders of Assignment 2, and the reference values the solution gives on them.

Every function takes a namespace (the reference solution's, or a student's unit on top of it) and returns plain
numbers. ``python -m autograder reference 02_random_teachers`` runs them on the solution notebook and writes
``reference_values.json``; the graders run the same functions on a submission and compare.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook


def small_net(seed: int) -> nn.Module:
    """A small convolutional network with BatchNorm (8x8 images -> 5 outputs). The convolution has no bias: before a
    BatchNorm its gradient is zero up to rounding, and an optimizer would follow the rounding."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5))


def images(seed: int, n: int = 16) -> torch.Tensor:
    return 2 + 3 * torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


# ---- Part I: the frozen teacher -----------------------------------------------------------------------------------
def teacher_outputs(ns) -> list[float]:
    """The frozen teacher's outputs on fixed images after .train(): its BatchNorm uses the running statistics."""
    teacher = ns.FrozenTeacher(small_net(1))
    teacher.train()
    return teacher(images(2, 4)).flatten().tolist()


# ---- Part II: the student initialization --------------------------------------------------------------------------
INIT_CASES = {  # name: (mode, alpha, eps, var_preserving)
    "teacher": ("teacher", 0.5, 1e-3, True),
    "random": ("random", 0.5, 1e-3, True),
    "interpolated, alpha 0.3, variance-preserving": ("interpolated", 0.3, 1e-3, True),
    "interpolated, alpha 0.3, plain": ("interpolated", 0.3, 1e-3, False),
    "interpolated, alpha 0.9, variance-preserving": ("interpolated", 0.9, 1e-3, True),
    "interpolated, alpha 1.0, variance-preserving": ("interpolated", 1.0, 1e-3, True),
    "neighborhood, eps 0.1": ("neighborhood", 0.5, 0.1, True),
}


def init_pair() -> tuple[nn.Module, nn.Module]:
    teacher, other = small_net(3), small_net(4)
    with torch.no_grad():
        teacher[1].running_mean.uniform_(-1, 1)
        teacher[1].running_var.uniform_(0.5, 2)
        other[1].running_mean.fill_(7.0)  # a buffer the student must not take
    teacher.eval().requires_grad_(False)
    return teacher, other


def student_weights(ns, case: str) -> dict[str, list[float]]:
    """Every tensor of the student's state_dict (flattened) for one initialization."""
    mode, alpha, eps, var_preserving = INIT_CASES[case]
    teacher, other = init_pair()
    student = ns.init_student(teacher, other, mode, alpha=alpha, eps=eps, var_preserving=var_preserving)
    return {name: value.flatten().tolist() for name, value in student.state_dict().items()}


# ---- Part III: the loss -------------------------------------------------------------------------------------------
LOSS_CASES = {  # name: (num_views, loss, pairing, student_temp, teacher_temp, batch, out_dim, seed)
    "1 view, CE, same, temperatures 1": (1, "CE", "same", 1.0, 1.0, 5, 7, 1),
    "1 view, KL, same, temperatures 1": (1, "KL", "same", 1.0, 1.0, 5, 7, 1),
    "2 views, CE, opposite, 0.1 / 0.04": (2, "CE", "opposite", 0.1, 0.04, 4, 6, 2),
    "2 views, KL, opposite, 0.1 / 0.04": (2, "KL", "opposite", 0.1, 0.04, 4, 6, 2),
    "3 views, CE, all, 0.5 / 0.2": (3, "CE", "all", 0.5, 0.2, 3, 9, 3),
    "3 views, KL, all, 0.2 / 0.5": (3, "KL", "all", 0.2, 0.5, 3, 9, 3),
    "3 views, KL, same, 1 / 0.1": (3, "KL", "same", 1.0, 0.1, 2, 5, 4),
    "4 views, CE, opposite, 1 / 1": (4, "CE", "opposite", 1.0, 1.0, 2, 4, 5),
}


def loss_inputs(case: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    views, _, _, _, _, batch, out_dim, seed = case
    gen = torch.Generator().manual_seed(seed)
    student = 2 * torch.randn(views * batch, out_dim, generator=gen)
    teacher = 2 * torch.randn(views * batch, out_dim, generator=gen)
    return student, teacher


def loss_value(ns, name: str) -> dict:
    case = LOSS_CASES[name]
    views, kind, pairing, s_temp, t_temp = case[:5]
    loss_fn = ns.DistillationLoss(views, kind, pairing, student_temp=s_temp, teacher_temp=t_temp)
    student, teacher = loss_inputs(case)
    student.requires_grad_(True)
    value = loss_fn(student, teacher)
    value.backward()
    return {"loss": float(value.detach()), "student_grad": student.grad.flatten().tolist()}


# one CE and one KL loss object, each called several times on new outputs (and once more on the first ones): a loss
# that keeps anything between calls (the teacher's distribution of a first call, the losses of earlier calls) differs
REPEATED_LOSS = (3, "all", 0.5, 0.1, 4, 6)  # (num_views, pairing, student_temp, teacher_temp, batch, out_dim)
REPEATED_CALLS = (("CE", 11), ("KL", 11), ("CE", 12), ("KL", 13), ("KL", 12), ("CE", 13), ("CE", 11), ("KL", 11))


def repeated_loss_objects(ns) -> dict:
    views, pairing, s_temp, t_temp = REPEATED_LOSS[:4]
    return {kind: ns.DistillationLoss(views, kind, pairing, student_temp=s_temp, teacher_temp=t_temp)
            for kind in ("CE", "KL")}


def repeated_call(objects: dict, kind: str, seed: int):
    """One call of the loss object ``kind`` on the outputs of ``seed``: (the loss, the student's outputs)."""
    views, pairing, s_temp, t_temp, batch, out_dim = REPEATED_LOSS
    student, teacher = loss_inputs((views, kind, pairing, s_temp, t_temp, batch, out_dim, seed))
    student.requires_grad_(True)
    return objects[kind](student, teacher), student


def repeated_loss_values(ns) -> list[dict]:
    objects = repeated_loss_objects(ns)
    out = []
    for kind, seed in REPEATED_CALLS:
        value, student = repeated_call(objects, kind, seed)
        value.backward()
        out.append({"loss": float(value.detach()), "student_grad": student.grad.flatten().tolist()})
    return out


# ---- Part IV: the probes ------------------------------------------------------------------------------------------
KNN_CASES = {  # name: (train, test, dim, classes, spread, k, seed)
    "k=20, 9 classes": (200, 60, 8, 9, 2.0, 20, 1),
    "k=1": (100, 40, 5, 4, 1.5, 1, 2),
    "k=4 (ties of votes)": (80, 50, 3, 3, 3.0, 4, 3),
    "k=2 (many ties of votes)": (120, 80, 2, 4, 3.0, 2, 7),
    "k=20 with 10 training points (k is capped)": (10, 30, 4, 3, 1.0, 20, 5),
}


def knn_data(case: tuple):
    n_train, n_test, dim, classes, spread, _, seed = case
    gen = torch.Generator().manual_seed(seed)
    centers = 2 * torch.randn(classes, dim, generator=gen)
    train_y = torch.randint(classes, (n_train,), generator=gen)
    test_y = torch.randint(classes, (n_test,), generator=gen)
    train_x = centers[train_y] + spread * torch.randn(n_train, dim, generator=gen)
    test_x = centers[test_y] + spread * torch.randn(n_test, dim, generator=gen)
    return train_x, train_y, test_x, test_y


def knn_case(ns, name: str) -> float:
    train_x, train_y, test_x, test_y = knn_data(KNN_CASES[name])
    return ns.knn_accuracy(train_x, train_y, test_x, test_y, k=KNN_CASES[name][5])


# each test point alone, with every label as its test label: knn_accuracy gives 1.0 exactly for the predicted label.
# Realistic features (overlapping clusters in 16 and 32 dimensions) with no near tie of distances at the k-th neighbor
KNN_POINT_CASES = {  # name: (train, test, dim, classes, spread, k, seed)
    "k=5, 16-dimensional features": (150, 24, 16, 5, 2.0, 5, 11),
    "k=10, 32-dimensional features": (200, 24, 32, 6, 2.5, 10, 12),
}


def knn_point_data(name: str):
    case = KNN_POINT_CASES[name]
    train_x, train_y, test_x, test_y = knn_data(case)
    k = case[5]
    nearest = torch.cdist(test_x, train_x).sort(dim=1).values
    gap = float((nearest[:, k] - nearest[:, k - 1]).min())
    if gap < 1e-3:  # rounding could then change which training points are the k nearest
        raise RuntimeError(f"{name}: a near tie of distances at the k-th neighbor ({gap:.2g}): choose another seed")
    return train_x, train_y, test_x, test_y


def knn_point_hits(ns, name: str) -> list[list[float]]:
    """For every test point alone: knn_accuracy with test label 0, 1, ... (1.0 for the predicted label only)."""
    train_x, train_y, test_x, _ = knn_point_data(name)
    classes, k = KNN_POINT_CASES[name][3], KNN_POINT_CASES[name][5]
    return [[float(ns.knn_accuracy(train_x, train_y, test_x[i:i + 1], torch.tensor([label]), k=k))
             for label in range(classes)] for i in range(len(test_x))]


PROBE_CASE = dict(n=300, n_test=300, dim=24, classes=5, spread=2.5, seed=6, batch_size=16)


def probe_data(n_total: int | None = None):
    c = PROBE_CASE
    gen = torch.Generator().manual_seed(c["seed"])
    centers = torch.randn(c["classes"], c["dim"], generator=gen)
    labels = torch.randint(c["classes"], (c["n"] + c["n_test"],), generator=gen)
    features = centers[labels] + c["spread"] / 4 * torch.randn(len(labels), c["dim"], generator=gen)
    features = (features - features.mean(0)) / features.std(0)
    return features[:c["n"]], labels[:c["n"]], features[c["n"]:], labels[c["n"]:]


def probe_loss(layer, features, labels) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(layer(features), labels))


def linear_probe_case(ns, epochs: int) -> dict:
    train_x, train_y, test_x, test_y = probe_data()
    torch.manual_seed(0)
    layer = ns.train_linear_probe(train_x, train_y, PROBE_CASE["classes"], epochs=epochs,
                                  batch_size=PROBE_CASE["batch_size"], seed=0)
    with torch.no_grad():
        test_acc = float((layer(test_x).argmax(-1) == test_y).float().mean())
    return {"train_loss": probe_loss(layer, train_x, train_y), "test_accuracy": test_acc}


class StepWatch:
    """Watches every optimizer step taken inside the ``with`` block (a global optimizer hook, removed on exit), whatever
    the optimizer and however the mini-batches are drawn: the number of steps, each parameter stepped (with its value
    before its first step), and the steps at which a parameter's gradient was not only what the backward passes since
    the previous step gave (gradients never cleared add up over the mini-batches)."""

    def __init__(self):
        self.steps, self.stale_steps = 0, 0
        self.params: dict[int, torch.Tensor] = {}    # id -> every parameter an optimizer stepped
        self.initial: dict[int, torch.Tensor] = {}   # id -> its value before its first step
        self._fresh: dict[int, torch.Tensor | None] = {}
        self._handles: list = []

    def __enter__(self):
        self._handles.append(register_optimizer_step_pre_hook(self._before_step))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _gradient(self, key: int, grad: torch.Tensor) -> None:
        fresh = self._fresh.get(key)
        self._fresh[key] = grad.detach().clone() if fresh is None else fresh + grad.detach()

    def _before_step(self, optimizer, args, kwargs) -> None:
        stale = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                key = id(p)
                if key not in self.params:  # its first step: from now on every gradient it gets is recorded
                    self.params[key], self.initial[key] = p, p.detach().clone()
                    self._handles.append(p.register_hook(functools.partial(self._gradient, key)))
                elif p.grad is not None:
                    fresh = self._fresh.get(key)
                    fresh = torch.zeros_like(p.grad) if fresh is None else fresh
                    stale |= not torch.allclose(p.grad, fresh, rtol=1e-5, atol=1e-7)
                self._fresh[key] = None
        self.steps += 1
        self.stale_steps += int(stale)

    def stepped(self, param: torch.Tensor) -> bool:
        return id(param) in self.params and self.params[id(param)] is param

    def moved(self, param: torch.Tensor) -> bool:
        return self.stepped(param) and not torch.equal(param.detach(), self.initial[id(param)])


def watched_probe(ns, epochs: int, batch_size: int):
    """The probe trained on the probe data, and the StepWatch of its training."""
    train_x, train_y, _, _ = probe_data()
    torch.manual_seed(0)
    with StepWatch() as watch:
        layer = ns.train_linear_probe(train_x, train_y, PROBE_CASE["classes"], epochs=epochs, batch_size=batch_size,
                                      seed=0)
    return layer, watch


# ---- Part V: the distillation loop --------------------------------------------------------------------------------
DISTILL_CASES = {  # name: (views, batches as a list of tensors?)
    "1 view": (1, False),
    "2 views (a list per batch)": (2, True),
}


def distill_trace(ns, name: str) -> dict:
    """Losses and the student's final weights after one epoch of 3 batches (a small network with BatchNorm)."""
    views, as_list = DISTILL_CASES[name]
    net = small_net(7)
    teacher = ns.FrozenTeacher(copy.deepcopy(net))
    student = ns.init_student(net, small_net(8), "teacher")
    student.eval()  # as after a probe: the loop must put it into training mode
    gen = torch.Generator().manual_seed(9)
    loader = [1 + torch.randn(views, 8, 3, 8, 8, generator=gen) for _ in range(3)]
    if as_list:
        loader = [list(batch) for batch in loader]
    # SGD: a step proportional to the gradient (Adam would turn rounding differences into steps of size lr)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5, momentum=0.9)
    loss_fn = ns.DistillationLoss(views, "KL", "same" if views == 1 else "opposite", student_temp=0.5,
                                  teacher_temp=0.2)
    losses = ns.distill_epoch(student, teacher, loss_fn, loader, optimizer)
    return {"losses": [float(v) for v in losses],
            "weights": {n: p.detach().flatten().tolist() for n, p in student.state_dict().items()}}


def generate(ns, workdir: Path) -> dict:
    """Every reference value, by unit, computed with the definitions in ``ns`` (the solution's)."""
    return {
        "frozen_teacher": {"outputs": teacher_outputs(ns)},
        "student_init": {name: student_weights(ns, name) for name in INIT_CASES},
        "distillation_loss": {**{name: loss_value(ns, name) for name in LOSS_CASES},
                              "repeated calls": repeated_loss_values(ns)},
        "knn_probe": {**{name: knn_case(ns, name) for name in KNN_CASES},
                      "per point": {name: knn_point_hits(ns, name) for name in KNN_POINT_CASES}},
        "linear_probe": {str(epochs): linear_probe_case(ns, epochs) for epochs in (1, 10)},
        "distill": {name: distill_trace(ns, name) for name in DISTILL_CASES},
    }
