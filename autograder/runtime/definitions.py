"""The reference solution's definitions, and the namespaces in which a unit's graders run.

A *unit* is everything a student writes in one solution cell, named by that cell's nbgrader ``grade_id``. Its
graders never see the student's other units: :class:`Definitions` executes the solution notebook's definition cells
(tags ``setup`` and ``api``) and records which names each unit's cell defines, and while a unit is graded every
other name of the assignment (the other units and the given code) is the reference's. So a wrong loss costs only
the loss's points: the trainer's graders run the student's trainer with the reference loss, head and views.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import types
from collections.abc import Iterable
from pathlib import Path

from autograder.assignment.course import DEFINITION_TAGS, Assignment, nbgrader_meta, source_of


@contextlib.contextmanager
def environment(env: dict[str, str] | None):
    """Set environment variables for the duration of the block (restored afterwards)."""
    import os

    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class GradingError(Exception):
    """A problem with a submission that prevents grading a unit; the message is for the student."""


def run_definition_cells(nb: dict, module: types.ModuleType, tags: Iterable[str] = DEFINITION_TAGS,
                         stub: str | None = None, label: str = "notebook") -> list[tuple[dict, tuple[str, ...]]]:
    """Execute the code cells of ``nb`` tagged with any of ``tags`` into ``module``, in order: the one way a notebook's
    definitions are loaded. Returns each cell run with the names it defined. A ``NotImplementedError`` raised by the
    cell whose ``grade_id`` is ``stub`` (a released stub) is expected; any other error propagates."""
    tags, ran = set(tags), []
    for index, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code" or not tags & set(cell.get("metadata", {}).get("tags", [])):
            continue
        before = dict(module.__dict__)
        code = compile(source_of(cell), f"<{label} cell {index}>", "exec")
        try:
            exec(code, module.__dict__)  # noqa: S102 - the course's own notebook
        except NotImplementedError:
            if stub is None or nbgrader_meta(cell).get("grade_id") != stub:
                raise
        ran.append((cell, tuple(k for k, v in module.__dict__.items() if k not in before or before[k] is not v)))
    return ran


def new_module(name: str, file: str) -> types.ModuleType:
    """An empty module registered in ``sys.modules`` (dataclasses, pickling and torch.save need it importable)."""
    module = types.ModuleType(name)
    module.__file__ = file
    sys.modules[name] = module
    return module


def load_definitions(path: Path, env: dict[str, str] | None = None, tags: Iterable[str] = DEFINITION_TAGS,
                     name: str = "dino_notebook") -> types.ModuleType:
    """The definitions of the notebook at ``path`` (its cells tagged with any of ``tags``) as a new module."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    module = new_module(name, str(path))
    with environment(env):
        run_definition_cells(nb, module, tags, label=str(path))
    return module


class Definitions:
    """The definitions of a (solution) notebook, with the names each of its cells defines.

    ``stub`` names a unit whose cell in ``nb`` is the released stub (a grading process never has the graded unit's
    solution in memory); the stub's ``NotImplementedError`` is then expected. ``module`` holds every definition,
    ``names[unit]`` the names a unit's cell defines, ``api_names`` every name an ``api`` cell defines.
    """

    def __init__(self, nb: dict, units: Iterable[str], env: dict[str, str] | None = None, stub: str | None = None,
                 label: str = "reference"):
        units = list(units)
        self.module = new_module(f"{label}_definitions", f"<{label}>")
        self.names: dict[str, tuple[str, ...]] = {}
        self.api_names: set[str] = set()
        with quiet(), environment(env):
            ran = run_definition_cells(nb, self.module, stub=stub, label=f"reference {label}")
        for cell, defined in ran:
            if "api" in cell.get("metadata", {}).get("tags", []):
                self.api_names.update(defined)
                grade_id = nbgrader_meta(cell).get("grade_id")
                if grade_id in units:
                    self.names[grade_id] = defined
        missing = set(units) - set(self.names) - {stub}
        if missing:
            raise GradingError(f"{label}: no api cell defines the unit(s) {sorted(missing)}")

    def others(self, unit: str) -> dict[str, object]:
        """Every api name of the reference except those of ``unit``: what a unit's graders substitute."""
        own = set(self.names.get(unit, ()))
        return {name: self.module.__dict__[name] for name in self.api_names - own}


_installed: dict[str, Definitions] = {}


def reference(assignment: Assignment) -> Definitions:
    """The assignment's reference definitions, loaded once per process in its grading environment."""
    if assignment.id not in _installed:
        import torch

        with torch.random.fork_rng(devices=[]):  # the setup cells seed torch: leave the caller's random state alone
            _installed[assignment.id] = Definitions(assignment.solution, assignment.units, assignment.environment(),
                                                  label=f"solution_{assignment.id}")
    return _installed[assignment.id]


def install_reference(assignment_id: str, ref: Definitions) -> None:
    """Make ``ref`` what :func:`reference` returns for the assignment (a grading process loads its own)."""
    _installed[assignment_id] = ref



class Namespace:
    """Attribute access to the names a unit's graders may use, with a clear error for a missing one."""

    def __init__(self, names: dict, unit: str, part: str):
        self._names, self.unit, self.part = names, unit, part

    def __getattr__(self, name):
        try:
            return self._names[name]
        except KeyError:
            raise GradingError(f"{name} is not defined: run the cell of {self.part} that defines it "
                               "(and keep the name given in the notebook)") from None


QUIET_INTO: list = []  # where quiet() sends output instead of a throw-away buffer (a grading process counts it there)


@contextlib.contextmanager
def quiet():
    """Swallow what the code run inside prints (to stdout and stderr)."""
    out, err = (QUIET_INTO[0], QUIET_INTO[0]) if QUIET_INTO else (io.StringIO(), io.StringIO())
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield
