"""The graded units of Assignment 1 and the namespaces in which their graders run.

A *unit* is everything a student writes in one solution cell, named by that cell's nbgrader ``grade_id``
(``dino_head``, ``dino_loss``, ``local_global_dataset``, ``schedules``, ``dino_trainer``, ``pseudo_labels``).
A *test cell* grades exactly one unit; its ``grade_id`` is ``test_<unit>_<kind>`` (``visible`` or ``hidden``).

Graders never see a student's other units: :class:`Reference` loads the solution notebook's definitions (its
``setup`` and ``api`` cells) and records which names each cell defines, and a unit is graded in a namespace where
every other name of the assignment is the reference's. So a wrong ``DINOLoss`` costs only the loss's points: the
trainer's graders run the student's ``DINOTrainer`` with the reference loss, head and views.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from pathlib import Path

import nbformat

from dinocourse.notebook import DEFINITION_TAGS, SOLUTION_NOTEBOOK, environment

UNITS = ("dino_head", "dino_loss", "local_global_dataset", "schedules", "dino_trainer", "pseudo_labels")
TEST_ID = re.compile(r"^test_(?P<unit>[a-z_]+?)_(?P<kind>visible|hidden)$")


class GradingError(Exception):
    """A problem with a submitted notebook that prevents grading a unit; the message is for the student."""


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def cells_by_grade_id(nb) -> dict:
    """The cells of a notebook that carry an nbgrader grade_id, by grade_id."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("grade_id")}


def unit_of_test(grade_id: str) -> str:
    """The unit a test cell grades, from its grade_id (``test_dino_loss_hidden`` -> ``dino_loss``)."""
    match = TEST_ID.match(grade_id)
    if not match or match["unit"] not in UNITS:
        raise ValueError(f"test cell grade_id {grade_id!r} is not test_<unit>_visible|hidden with a unit of "
                         f"{', '.join(UNITS)}")
    return match["unit"]


def part_of(nb, index: int) -> str:
    """The title of the part (level-1 heading ``# Part ...``) a cell belongs to, e.g. 'Part II. The loss function'."""
    for cell in reversed(nb.cells[:index + 1]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# Part"):
                    return line[2:].strip()
    return "the notebook"


def unit_cells(nb) -> dict[str, int]:
    """Index of the solution cell of every unit in a notebook (a unit missing from it is left out)."""
    found = {}
    for index, cell in enumerate(nb.cells):
        grade_id = nbgrader_meta(cell).get("grade_id")
        if cell.cell_type == "code" and grade_id in UNITS and nbgrader_meta(cell).get("solution"):
            found.setdefault(grade_id, index)
    return found


class Reference:
    """The solution notebook's definitions, with the names each of its cells defines.

    ``stub`` names a unit whose cell in ``nb`` is the released stub (the class-grading worker never has the graded
    unit's solution in memory); the stub's ``NotImplementedError`` is then expected.

    ``module`` holds every definition; ``names[unit]`` the names defined by a unit's cell; ``api_names`` every name
    defined by an ``api`` cell (the given code and all units); ``parts[unit]`` the part a unit belongs to.
    """

    def __init__(self, path: Path = SOLUTION_NOTEBOOK, env: dict[str, str] | None = None, nb=None,
                 stub: str | None = None):
        self.path = Path(path)
        self.nb = nb if nb is not None else nbformat.read(self.path, as_version=4)
        self.module = types.ModuleType("dino_reference")
        self.module.__file__ = str(self.path)
        sys.modules[self.module.__name__] = self.module  # pickling and torch.save need an importable module
        self.names: dict[str, tuple[str, ...]] = {}
        self.api_names: set[str] = set()
        self.parts = {unit: part_of(self.nb, index) for unit, index in unit_cells(self.nb).items()}
        with quiet(), environment(env):
            for index, cell in enumerate(self.nb.cells):
                tags = set(cell.metadata.get("tags", []))
                if cell.cell_type != "code" or not tags & set(DEFINITION_TAGS):
                    continue
                before = dict(self.module.__dict__)
                code = compile(cell.source, f"<reference {self.path.name} cell {index}>", "exec")
                try:
                    exec(code, self.module.__dict__)  # noqa: S102
                except NotImplementedError:
                    if nbgrader_meta(cell).get("grade_id") != stub:  # a released stub may raise
                        raise
                defined = tuple(k for k, v in self.module.__dict__.items() if k not in before or before[k] is not v)
                if "api" in tags:
                    self.api_names.update(defined)
                    grade_id = nbgrader_meta(cell).get("grade_id")
                    if grade_id in UNITS:
                        self.names[grade_id] = defined
        missing = set(UNITS) - set(self.names) - {stub}
        if missing:
            raise RuntimeError(f"{self.path}: no api cell defines the unit(s) {sorted(missing)}")

    def others(self, unit: str) -> dict[str, object]:
        """Every api name of the reference except the names of ``unit``: what a unit's graders substitute."""
        own = set(self.names[unit])
        return {name: self.module.__dict__[name] for name in self.api_names - own}


_installed: list[Reference] = []


def reference() -> Reference:
    """The reference definitions, loaded once per process in the grading budget (``DINO_MODE=tiny``)."""
    if not _installed:
        install_reference(load_reference())
    return _installed[0]


def load_reference(nb=None, stub: str | None = None) -> Reference:
    """Load the solution's definitions (or those of ``nb``) without touching the caller's random state."""
    import torch

    with torch.random.fork_rng(devices=[]):  # the setup cells seed torch: leave the caller's random state alone
        return Reference(env={"DINO_MODE": "tiny"}, nb=nb, stub=stub)


def install_reference(ref: Reference) -> None:
    """Make ``ref`` what :func:`reference` returns in this process (a class-grading worker installs its own)."""
    _installed[:] = [ref]


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


def notebook_namespace(path: Path, unit: str) -> Namespace:
    """A namespace with the reference's definitions and the unit's cell of the notebook at ``path`` run on top.

    This is how the graders run from the command line: only the unit's own cell comes from the notebook.
    """
    ref = reference()
    try:
        nb = nbformat.read(Path(path), as_version=4)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
        raise GradingError(f"{path} is not a readable notebook: {err}") from None
    index = unit_cells(nb).get(unit)
    if index is None:
        raise GradingError(f"the notebook has no solution cell with grade_id {unit!r} ({ref.parts[unit]}); "
                           "was the cell deleted or its metadata changed?")
    names = own_cell_namespace(ref, unit)
    try:
        with quiet():
            exec(compile(nb.cells[index].source, f"<your cell: {unit}>", "exec"), names)  # noqa: S102
    except BaseException as err:  # noqa: BLE001 - a broken cell is the student's, and is reported as such
        raise GradingError(f"running your cell for {ref.parts[unit]} failed: {type(err).__name__}: {err}") from None
    return Namespace(names, unit, ref.parts[unit])


def own_cell_namespace(ref: Reference, unit: str) -> dict:
    """The reference's definitions without the unit's own names: a cell that defines nothing gets no free answer."""
    names = {k: v for k, v in ref.module.__dict__.items() if k not in set(ref.names.get(unit, ()))}
    names["__name__"] = f"submission_{unit}"
    return names


QUIET_INTO = None  # where quiet() sends output instead of a throw-away buffer (the class grader counts it there)


@contextlib.contextmanager
def quiet():
    """Swallow what the code run inside prints (to stdout and stderr)."""
    out, err = (QUIET_INTO, QUIET_INTO) if QUIET_INTO is not None else (io.StringIO(), io.StringIO())
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield

