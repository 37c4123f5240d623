"""The algorithms the bed runs, taken from the course's notebooks (one source of truth): their ``setup`` and ``api``
cells are executed into modules, exactly as the graders load the reference solution.

From Assignment 1: ``DINOLoss`` (centering), ``EMAWrapper``, ``CosineSchedule``. From Assignment 2:
``DistillationModel`` (encoder + head), ``FrozenTeacher``, ``init_student``, ``DistillationLoss``, ``distill_epoch``,
``knn_accuracy``, ``train_linear_probe``, ``probe_accuracy``.
"""

from __future__ import annotations

import contextlib
import io
import types
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT
from autograder.runtime.definitions import load_definitions

NOTEBOOKS = {"dino": "01_dino/dino.ipynb", "random_teachers": "02_random_teachers/random_teachers.ipynb"}
NEEDED = {"dino": ("DINOLoss", "EMAWrapper", "CosineSchedule"),
          "random_teachers": ("DistillationModel", "FrozenTeacher", "init_student", "DistillationLoss", "distill_epoch",
                              "knn_accuracy", "train_linear_probe", "probe_accuracy")}


class CodeError(RuntimeError):
    """The notebooks the bed needs are missing or incomplete."""


@dataclass
class Code:
    dino: types.ModuleType
    random_teachers: types.ModuleType


def folder_of(code: str) -> Path:
    return COURSE_ROOT / code if code in ("solutions", "assignments") else Path(code)


def load(code: str = "solutions") -> Code:
    """The two notebooks' definitions from ``solutions/``, ``assignments/`` or a folder of one's own."""
    folder = folder_of(code)
    modules = {}
    for key, relative in NOTEBOOKS.items():
        path = folder / relative
        if not path.is_file():
            raise CodeError(f"--code {code}: {path} is missing (the bed runs the course notebooks' code; "
                            "instructors have solutions/, students their own finished notebooks)")
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                module = load_definitions(path, env={"DINO_MODE": "tiny"}, name=f"dinolab_{key}")
            except Exception as err:  # noqa: BLE001 - any failure of a notebook's cell is reported as such
                raise CodeError(f"{path}: a setup or api cell failed: {type(err).__name__}: {err}") from err
        missing = [n for n in NEEDED[key] if not callable(getattr(module, n, None))]
        if missing:
            raise CodeError(f"{path} defines no {', '.join(missing)}")
        modules[key] = module
    return Code(**modules)
