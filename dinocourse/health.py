"""The health panel of a DINO run (given code): is the model learning, or has it collapsed?

DINO can fail in two ways that the loss alone does not tell apart from slow learning:

* **uniform collapse** — the centering wins over the sharpening: every teacher output is (nearly) uniform over the
  prototypes, the student learns to output the uniform distribution and the loss sits at log(out_dim);
* **one-hot collapse** — the sharpening wins: one prototype takes every image, whatever the image.

:class:`TrainingHealth` records at every training step, from the arguments the loss module is called with (a
forward pre-hook on it, so it sees exactly what the loss sees, before the loss updates its center):

* ``alive`` — exp(entropy) of the batch's *mean* teacher distribution: how many prototypes the batch uses
  (1 = one-hot collapse; at most the number of teacher outputs in the batch);
* ``sharpness`` — exp(mean entropy) of the *single* teacher distributions: how many prototypes one image spreads
  over (1 = one-hot, out_dim = uniform collapse);
* ``kl`` — the mean KL divergence from each teacher distribution to the student's distributions of the other views
  (what is left to learn; zero when the student copies the teacher, for example when both are uniform);
* ``center_norm`` — the norm of the loss's center before its update;
* ``used`` — how many different pseudo-labels (argmax of the teacher's output, without the center) the batch has;
  per epoch, :meth:`TrainingHealth.epochs` counts the different pseudo-labels over all its steps.

A healthy run has a low ``sharpness`` (each image's target is peaked) and a high ``alive`` (different images peak at
different prototypes), and its loss falls below log(out_dim).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch.nn import functional as F

METRICS = ("loss", "alive", "sharpness", "kl", "center_norm", "used")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(dim=-1)


class TrainingHealth:
    """Per-step health metrics of a DINO run; ``state_dict`` / ``load_state_dict`` keep them in a checkpoint."""

    def __init__(self):
        self.steps = {name: [] for name in ("epoch", *METRICS)}
        self.labels_per_epoch: dict[int, set[int]] = {}
        self.out_dim = None
        self.problem = None  # why a step could not be recorded, if one could not
        self._pending = None

    def __len__(self) -> int:
        return len(self.steps["epoch"])

    # ---- recording ------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def watch(self, loss_module: torch.nn.Module):
        """While inside, every call of ``loss_module(student_output, teacher_output, teacher_temp)`` is observed.
        Anything that is not a ``torch.nn.Module`` (a plain function, None) is not observed: nothing is recorded."""
        if not isinstance(loss_module, torch.nn.Module):
            yield self
            return
        def hook(module, args, kwargs):
            names = ("student_output", "teacher_output", "teacher_temp")
            given = dict(zip(names, args, strict=False)) | {k: v for k, v in kwargs.items() if k in names}
            center = getattr(module, "center", None)
            self._pending = (given, None if not torch.is_tensor(center) else center.detach().float().clone(), module)

        handle = loss_module.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()
            self._pending = None

    @torch.no_grad()
    def record(self, epoch: int, loss: float) -> None:
        """Record the step whose loss call was just observed (does nothing if none was)."""
        if self._pending is None:
            return
        given, center, module = self._pending
        self._pending = None
        teacher, student = given.get("teacher_output"), given.get("student_output")
        temp = given.get("teacher_temp")
        if not (torch.is_tensor(teacher) and torch.is_tensor(student) and temp is not None):
            return
        try:
            self._record(epoch, loss, teacher.detach().float(), student.detach().float(), float(temp), center, module)
        except (RuntimeError, ValueError, IndexError, TypeError) as err:  # outputs of an unexpected shape
            self.problem = f"step {len(self) + 1} could not be recorded: {err}"

    def _record(self, epoch, loss, teacher, student, temp, center, module) -> None:
        self.out_dim = teacher.shape[-1]
        centered = teacher if center is None else teacher - center
        probs = F.softmax(centered / temp, dim=-1)
        labels = teacher.argmax(dim=-1)
        self.labels_per_epoch.setdefault(int(epoch), set()).update(labels.tolist())
        row = dict(epoch=int(epoch), loss=float(loss), alive=float(_entropy(probs.mean(dim=0)).exp()),
                   sharpness=float(_entropy(probs).mean().exp()),
                   kl=self._kl(probs, student, module),
                   center_norm=float("nan") if center is None else float(center.norm()),
                   used=int(labels.unique().numel()))
        for name, value in row.items():
            self.steps[name].append(value)

    @staticmethod
    def _kl(probs: torch.Tensor, student: torch.Tensor, module) -> float:
        """Mean KL(teacher view || student view) over the pairs of different views (view-major layout)."""
        n_global = getattr(module, "num_global", None)
        student_temp = getattr(module, "student_temp", None)
        if not n_global or not student_temp or probs.shape[0] % n_global or student.shape[0] % (
                probs.shape[0] // n_global):
            return float("nan")
        batch = probs.shape[0] // n_global
        log_q = F.log_softmax(student / float(student_temp), dim=-1).view(-1, batch, student.shape[-1])
        p = probs.view(n_global, batch, -1)
        log_p = p.clamp_min(1e-12).log()
        total, pairs = 0.0, 0
        for t in range(n_global):
            for s in range(log_q.shape[0]):
                if s != t:
                    total += float((p[t] * (log_p[t] - log_q[s])).sum(dim=-1).mean())
                    pairs += 1
        return total / max(pairs, 1)

    # ---- reading --------------------------------------------------------------------------------------------------
    def epochs(self) -> list[dict]:
        """One row per epoch: the mean of every metric over its steps, and ``labels`` = pseudo-labels used in it."""
        rows = []
        for epoch in sorted(set(self.steps["epoch"])):
            idx = [i for i, e in enumerate(self.steps["epoch"]) if e == epoch]
            row = {"epoch": epoch + 1, "steps": len(idx)}
            for name in METRICS:
                values = [self.steps[name][i] for i in idx]
                row[name] = sum(values) / len(values)
            row["labels"] = len(self.labels_per_epoch.get(epoch, ()))
            rows.append(row)
        return rows

    def verdict(self) -> str:
        """One sentence on the last epoch: healthy, uniform collapse or one-hot collapse."""
        rows = self.epochs()
        if not rows:
            if self.problem:
                return f"no training step was recorded: {self.problem}"
            return "no training step was recorded (the loss module was not called as a module, or no step ran)"
        last, k = rows[-1], self.out_dim
        if last["sharpness"] > 0.5 * k:
            return (f"uniform collapse: a single teacher output spreads over {last['sharpness']:.0f} of {k} "
                    f"prototypes (nearly uniform); the loss {last['loss']:.3f} sits near log(out_dim) = "
                    f"{math.log(k):.3f}")
        if last["alive"] < 1.5:
            return (f"one-hot collapse: the batch's teacher outputs use {last['alive']:.1f} prototype(s) in all; "
                    "every image gets the same pseudo-label")
        return (f"healthy: a single teacher output spreads over {last['sharpness']:.1f} prototypes, a batch over "
                f"{last['alive']:.1f}; {last['labels']} different pseudo-labels in the last epoch; loss "
                f"{last['loss']:.3f} (log(out_dim) = {math.log(k):.3f})")

    def table(self) -> str:
        head = f"{'epoch':>5} {'loss':>7} {'alive':>7} {'sharp':>7} {'KL':>7} {'|center|':>8} {'labels':>6}"
        lines = [head]
        for r in self.epochs():
            lines.append(f"{r['epoch']:>5} {r['loss']:7.3f} {r['alive']:7.1f} {r['sharpness']:7.1f} {r['kl']:7.3f} "
                         f"{r['center_norm']:8.3f} {r['labels']:>6}")
        return "\n".join(lines)

    def plot(self, title: str = "Health of the run", axes=None):
        """A figure of the run: loss, prototypes alive vs sharpness, KL, center norm, pseudo-labels per epoch
        (into a row of five ``axes`` if given; see :func:`compare`)."""
        import matplotlib.pyplot as plt
        import numpy as np

        fig = None
        if axes is None:
            fig, axes = plt.subplots(1, 5, figsize=(18, 3.2))
        steps = np.arange(len(self))
        rows = self.epochs()
        k = self.out_dim or 1
        ends = np.cumsum([r["steps"] for r in rows]) - 0.5

        def curve(ax, name, label=None, **kw):
            values = np.asarray(self.steps[name], dtype=float)
            ax.plot(steps, values, alpha=0.35, lw=0.8, **kw)
            ax.plot(ends, [r[name] for r in rows], "o-", ms=3, label=label or f"{name} (epoch mean)", **kw)

        curve(axes[0], "loss", color="tab:blue")
        axes[0].axhline(math.log(k), color="gray", ls="--", lw=1, label=f"log(out_dim) = {math.log(k):.2f}")
        axes[0].set_title("loss")
        curve(axes[1], "alive", label="alive: prototypes a batch uses", color="tab:green")
        curve(axes[1], "sharpness", label="sharpness: prototypes one image uses", color="tab:red")
        axes[1].axhline(k, color="gray", ls="--", lw=1)
        axes[1].axhline(1, color="gray", ls=":", lw=1)
        axes[1].set_yscale("log")
        axes[1].set_ylim(0.8, k * 1.25)
        axes[1].set_title(f"teacher outputs (1 = one-hot, {k} = uniform)")
        curve(axes[2], "kl", color="tab:purple")
        axes[2].set_title("KL(teacher || student)")
        curve(axes[3], "center_norm", color="tab:brown")
        axes[3].set_title("norm of the center")
        axes[4].bar([r["epoch"] for r in rows], [r["labels"] for r in rows], color="tab:orange")
        axes[4].set_title(f"pseudo-labels used per epoch (of {k})")
        axes[4].set_xlabel("epoch")
        for ax in axes[:4]:
            ax.set_xlabel("step")
        for ax in axes[:2]:
            ax.legend(fontsize=7)
        if fig is None:
            axes[0].set_title(f"{title} ({self.verdict().split(':')[0]})\nloss", fontsize=10, fontweight="bold")
            return axes[0].figure
        fig.suptitle(f"{title}: {self.verdict()}", fontsize=9)
        fig.tight_layout()
        return fig

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"steps": {k: list(v) for k, v in self.steps.items()}, "out_dim": self.out_dim,
                "labels_per_epoch": {e: sorted(s) for e, s in self.labels_per_epoch.items()}}

    def load_state_dict(self, state: dict | None) -> None:
        self.__init__()
        if not state:
            return
        for name, values in state.get("steps", {}).items():
            if name in self.steps:
                self.steps[name] = list(values)
        self.out_dim = state.get("out_dim")
        self.labels_per_epoch = {int(e): set(v) for e, v in state.get("labels_per_epoch", {}).items()}

