"""The plumbing of Assignment 1's training (given code): the budget of a notebook run, the recipe of a short run,
the trainer's bookkeeping (the epoch loop, checkpoints, the health record, bf16 on a GPU) and the fast view path.

The notebook's ``DINOTrainer`` subclasses :class:`TrainerBase` and writes what DINO is: its modules (``__init__``)
and one step (``training_step``). Everything here is the same for every correct trainer.

* :func:`setup` picks the **budget** from the machine (``quick`` on a CPU or without full PathMNIST, ``full`` with a
  GPU and full PathMNIST, ``tiny`` while the notebook is graded) and prints it in one line.
* :class:`Recipe`: the original recipe, or the short run's (a constant sharp teacher temperature and the learning
  rate scaled with the batch size, DINO's linear scaling rule).
* :class:`TrainerBase`: ``train(num_epochs, resume)``, ``save()``, ``load()``; a checkpoint's file name is made from
  every setting that changes training (:meth:`Budget.checkpoint`), so a changed setting trains anew.
* :func:`use_fast_views`: the views of a whole batch made at once where the model is (``dinocourse.views``), used
  only when they look like the views of the student's own dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dinocourse.data import default_data_root, prepare_root
from dinocourse.health import TrainingHealth
from dinocourse.views import BatchedViewLoader, compare_views, dataset_images

MODES = ("quick", "full", "tiny")
EPOCHS = {"full": 15, "quick": 10, "tiny": 1}           # passes over the training images
BATCH_SIZE = {"full": 256, "quick": 16, "tiny": 8}      # images per step
TRAIN_LIMIT = {"full": None, "quick": 600, "tiny": 16}  # training images, drawn at random (None: all)
EVAL_LIMIT = {"full": None, "quick": 1000, "tiny": 64}  # k-NN reference and test images (None: all)


# ---- the recipe ----------------------------------------------------------------------------------------------------
class Scaled:
    """``factor`` times a schedule (the trainer calls ``init(total_steps)``, then ``schedule(step)``)."""

    def __init__(self, schedule, factor: float):
        self.schedule, self.factor = schedule, factor

    def init(self, total_steps: int) -> None:
        self.schedule.init(total_steps)

    def __call__(self, step: int) -> float:
        return self.factor * self.schedule(step)


class Constant:
    """A schedule that is one value at every step."""

    def __init__(self, value: float):
        self.value = value

    def init(self, total_steps: int) -> None:
        pass

    def __call__(self, step: int) -> float:
        return self.value


@dataclass(frozen=True)
class Recipe:
    """How a run changes the student's schedules: a constant teacher temperature (None: the schedule as it is) and a
    factor on the learning rate."""
    teacher_temp: float | None = None
    lr_scale: float = 1.0

    @classmethod
    def original(cls) -> Recipe:
        return cls()

    @classmethod
    def short_run(cls, batch_size: int) -> Recipe:
        """A sharp constant teacher (0.02) and lr x batch / 256 (the original's 5e-4 is for batch 256)."""
        return cls(teacher_temp=0.02, lr_scale=batch_size / 256)

    @classmethod
    def named(cls, name: str, batch_size: int) -> Recipe:
        if name not in ("original", "short-run"):
            raise ValueError(f"recipe must be 'original' or 'short-run', got {name!r}")
        return cls.original() if name == "original" else cls.short_run(batch_size)

    def lr(self, lr_schedule):
        return lr_schedule if self.lr_scale == 1.0 else Scaled(lr_schedule, self.lr_scale)

    def teacher_temperature(self, teacher_temp_schedule):
        return teacher_temp_schedule if self.teacher_temp is None else Constant(self.teacher_temp)

    def describe(self) -> dict:
        return {"teacher_temp": "schedule" if self.teacher_temp is None else self.teacher_temp,
                "lr_scale": self.lr_scale}


# ---- the budget ----------------------------------------------------------------------------------------------------
def _schedule_settings(schedule) -> dict:
    """What defines a schedule (its constructor's values), for a checkpoint's identity."""
    inner = {k: v for k, v in vars(schedule).items() if k != "total_steps" and not isinstance(v, np.ndarray)}
    return {k: (_schedule_settings(v) if hasattr(v, "init") else
                float(v) if isinstance(v, (float, np.floating)) else v) for k, v in inner.items()
            if isinstance(v, (int, float, str, bool, type(None), np.floating)) or hasattr(v, "init")}


def _code_digest(code) -> str:
    """What a function computes (bytecode, constants, names; not where it is written), recursively."""
    parts = [code.co_code.hex(), repr(code.co_names)]
    for const in code.co_consts:
        parts.append(_code_digest(const) if hasattr(const, "co_code") else repr(const))
    return hashlib.md5("|".join(parts).encode()).hexdigest()


def code_identity(*classes) -> dict:
    """A digest of every method of ``classes`` (the student's code that training runs)."""
    found = {}
    for cls in classes:
        for name, member in sorted(vars(cls).items()):
            function = getattr(member, "__func__", member)
            if hasattr(function, "__code__"):
                found[f"{cls.__name__}.{name}"] = _code_digest(function.__code__)
    return found


@dataclass
class Budget:
    """Every setting of a notebook run that is not the student's: see :func:`setup`."""
    mode: str
    device: torch.device
    data_root: Path
    data_kind: str
    seed: int
    epochs: int
    batch_size: int
    train_limit: int | None
    eval_limit: int | None
    recipe: Recipe
    results: Path
    grading: bool
    num_workers: int = 0
    fast_views: bool = True
    amp: bool = False

    @property
    def resume(self) -> bool:
        """Load a finished run's checkpoint instead of training again (never while the notebook is graded)."""
        return not self.grading

    def line(self) -> str:
        recipe = "original recipe" if self.recipe == Recipe.original() else (
            f"short-run recipe (teacher temperature {self.recipe.teacher_temp}, lr x {self.recipe.lr_scale:g})")
        images = "all" if self.train_limit is None else f"at most {self.train_limit:,}"
        return (f"{self.mode} mode on {self.device.type}: {self.data_kind} PathMNIST ({images} training images), "
                f"{self.epochs} epochs of batch {self.batch_size}, {recipe}, seed {self.seed}")

    def checkpoint(self, dataset, schedules: dict, code: tuple = (), **settings) -> Path:
        """The checkpoint of a run: one file per combination of every setting that changes training, and of the code
        of ``code`` (classes: a change of their methods trains anew)."""
        identity = {"code": code_identity(*code),
                    "mode": self.mode, "data": self.data_kind, "train_images": len(dataset), "seed": self.seed,
                    "epochs": self.epochs, "batch_size": self.batch_size, "recipe": self.recipe.describe(),
                    "fast_views": self.fast_views, "num_global": dataset.num_global, "num_local": dataset.num_local,
                    "schedules": {name: _schedule_settings(s) for name, s in schedules.items()}, **settings}
        text = json.dumps(identity, sort_keys=True, default=str)
        digest = hashlib.md5(text.encode()).hexdigest()[:10]
        path = self.results / f"dino_{self.mode}_{self.data_kind}_{digest}.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".json").write_text(json.dumps(identity, indent=1, sort_keys=True, default=str) + "\n")
        return path


def setup(mode: str | None = None, recipe: str | None = None, seed: int | None = None,
          quiet: bool = False) -> Budget:
    """The run's budget from the machine and the environment (``DINO_MODE``, ``DINO_SEED``, ``DINO_DATA``,
    ``DINO_DOWNLOAD``, ``DINO_RESULTS``, ``DINO_FAST_VIEWS``); arguments override them. ``recipe``: ``"original"``
    or ``"short-run"`` (default: short-run in quick mode, original otherwise). Seeds torch and prints one line."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    grading = os.environ.get("NBGRADER_EXECUTION") in ("autograde", "validate")
    data_root = default_data_root()
    data_kind = prepare_root(data_root)["kind"]
    mode = mode or os.environ.get("DINO_MODE") or (
        "tiny" if grading else "full" if device.type == "cuda" and data_kind == "full" else "quick")
    if mode not in MODES:
        raise ValueError(f"the mode (DINO_MODE) must be one of {', '.join(MODES)}, got {mode!r}")
    seed = int(os.environ.get("DINO_SEED", 0)) if seed is None else seed
    batch = BATCH_SIZE[mode]
    budget = Budget(mode=mode, device=device, data_root=data_root, data_kind=data_kind, seed=seed,
                    epochs=EPOCHS[mode], batch_size=batch, train_limit=TRAIN_LIMIT[mode], eval_limit=EVAL_LIMIT[mode],
                    recipe=Recipe.named(recipe or ("short-run" if mode == "quick" else "original"), batch),
                    results=Path(os.environ.get("DINO_RESULTS", "results")), grading=grading,
                    num_workers=4 if device.type == "cuda" else 0,
                    fast_views=os.environ.get("DINO_FAST_VIEWS", "1") != "0", amp=device.type == "cuda")
    torch.manual_seed(seed)
    if not quiet:
        print(budget.line())
    return budget


# ---- the trainer's bookkeeping -------------------------------------------------------------------------------------
class TrainerBase(torch.nn.Module):
    """What every DINO trainer of the course does besides DINO: the data loader, the epoch loop with a progress bar
    and the health record, bf16 autocast on a GPU, checkpoints after every epoch and resuming from them.

    A subclass builds ``self.student``, ``self.teacher``, ``self.optim`` and ``self.dino_loss`` and implements
    ``training_step(batch)`` for a batch of views of shape (views, batch_size, 3, H, W), using ``self.steps``.
    """

    def __init__(self, dataset, lr_schedule, wd_schedule, teacher_temp_schedule, teacher_ema_schedule,
                 batch_size: int = 256, ckpt_name="checkpoint.pth", num_workers: int = 0):
        super().__init__()
        self.dataset, self.batch_size = dataset, batch_size
        self.lr_schedule, self.wd_schedule = lr_schedule, wd_schedule
        self.teacher_temp_schedule, self.teacher_ema_schedule = teacher_temp_schedule, teacher_ema_schedule
        self.num_global, self.num_local = dataset.num_global, dataset.num_local
        self.ckpt_name = Path(ckpt_name)
        self.epoch, self.steps = 0, 0
        self.history: list[float] = []     # the loss of every step
        self.health = TrainingHealth()     # per-step health metrics (dinocourse.health)
        self.amp = False                   # bf16 autocast for the forward passes (set on a GPU)
        self.data_loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                      pin_memory=torch.cuda.is_available(), drop_last=True)

    @property
    def device(self) -> torch.device:
        return next(self.student.parameters()).device

    def training_step(self, batch):
        raise NotImplementedError("DINOTrainer.training_step: one DINO step on a batch of views")

    def train_one_epoch(self, epoch: int, max_steps: int | None = None) -> None:
        """One pass over the data loader (or its first ``max_steps`` batches)."""
        for module in (self.student, self.teacher):
            module.train()
        with (tqdm(self.data_loader, desc=f"epoch {epoch + 1}", leave=False) as bar,
              self.health.watch(getattr(self, "dino_loss", None))):
            for index, batch in enumerate(bar):
                if max_steps is not None and index >= max_steps:
                    break
                # (batch_size, views, c, h, w) -> (views, batch_size, c, h, w)
                batch = batch.transpose(0, 1).contiguous().to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss = self.training_step(batch)
                self.history.append(float(loss.detach()) if torch.is_tensor(loss) else float(loss))
                self.health.record(epoch, self.history[-1])  # what the loss saw in this step (no extra forward)
                bar.set_postfix(loss=self.history[-1])
                self.steps += 1

    def state(self) -> dict:
        return dict(student=self.student.state_dict(), teacher=self.teacher.state_dict(),
                    optim=self.optim.state_dict(), dino_loss=self.dino_loss.state_dict(), epoch=self.epoch,
                    steps=self.steps, history=self.history, health=self.health.state_dict())

    def save(self) -> None:
        self.ckpt_name.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt_name.with_name(self.ckpt_name.name + ".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, self.ckpt_name)  # an interrupted save never leaves a broken checkpoint

    def load(self) -> None:
        print(f"Loading the checkpoint {self.ckpt_name} of these settings (training goes on from it, or is skipped "
              "if it finished; delete it to train again)")
        # the course's own file, which may hold the numpy floats a schedule returns (weights-only loading refuses them)
        ckpt = torch.load(self.ckpt_name, map_location=self.device, weights_only=False)
        self.student.load_state_dict(ckpt["student"])
        self.teacher.load_state_dict(ckpt["teacher"])
        self.optim.load_state_dict(ckpt["optim"])
        self.dino_loss.load_state_dict(ckpt["dino_loss"])
        self.epoch, self.steps = ckpt["epoch"], ckpt["steps"]
        self.history = list(ckpt.get("history", []))
        self.health.load_state_dict(ckpt.get("health"))

    def train(self, num_epochs: int, resume: bool = False, on_epoch=None):
        """Train for ``num_epochs`` (the schedules span them all), saving a checkpoint after every epoch; with
        ``resume``, go on from this trainer's checkpoint if there is one. ``on_epoch(epoch)`` is called after each
        epoch (epochs counted from 1). Returns the teacher's encoder."""
        self.epoch, self.steps, self.history, self.health = 0, 0, [], TrainingHealth()
        total_steps = len(self.data_loader) * num_epochs
        if total_steps == 0:
            raise ValueError(f"no training steps: {len(self.dataset)} images give no full batch of "
                             f"{self.batch_size} (the loader drops incomplete batches), or num_epochs is 0")
        for schedule in (self.lr_schedule, self.wd_schedule, self.teacher_temp_schedule, self.teacher_ema_schedule):
            schedule.init(total_steps)
        if resume and self.ckpt_name.exists():
            self.load()
        while self.epoch < num_epochs:
            start = time.perf_counter()
            self.train_one_epoch(self.epoch)
            self.epoch += 1
            self.save()
            losses = self.history[-len(self.data_loader):]
            print(f"epoch {self.epoch}/{num_epochs}: mean loss {np.mean(losses):.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            if on_epoch is not None:
                on_epoch(self.epoch)
        return self.teacher.model.encoder


def save_summary(summary: dict, path: Path) -> None:
    """Write a run's summary as JSON and print it for a person (1-NN accuracies of validation and test side by
    side)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"DINO on PathMNIST, {summary['budget']}")
    print(f"  training:  {summary['epochs']} epoch(s), {summary['steps']} steps: {summary['train_seconds']:.0f} s")
    print(f"  health:    {summary['health']}")
    width = max(len(name) for name in summary["val_knn"])
    print(f"  1-NN accuracy {'':<{width - 12}} validation    test ({summary['test_images']} images)")
    for name, val in summary["val_knn"].items():
        print(f"    {name:<{width}}  {100 * val:8.1f} %  {100 * summary['test_knn'][name]:6.1f} %")
    used = ", ".join(f"{name} {n}" for name, n in summary["pseudo_labels_used"].items())
    print(f"  pseudo-labels used on the validation images: {used}")
    print(f"  run summary: {path}")


def use_fast_views(trainer, dataset, device) -> bool:
    """Let ``trainer`` train on batched views (:mod:`dinocourse.views`) when they look like ``dataset``'s own views;
    otherwise say why and keep the student's dataset (image by image, slower). Returns whether it switched."""
    try:
        agree, table = compare_views(dataset)
    except Exception as err:  # noqa: BLE001 - the student's dataset fails: training shows where, image by image
        agree, table = False, f"{type(err).__name__}: {err}"
    if not agree:
        print("The batched views differ from the views of your LocalGlobalPathMNIST, so training uses yours "
              "(image by image, slower):\n" + table)
        return False
    norm = dataset.NORMALIZE
    trainer.data_loader = BatchedViewLoader(dataset_images(dataset), trainer.batch_size, dataset.num_global,
                                            dataset.num_local, norm.mean, norm.std, device=device)
    return True


__all__ = ["Budget", "Constant", "Recipe", "Scaled", "TrainerBase", "save_summary", "setup", "use_fast_views"]
