"""The course and its assignments, as the grading framework sees them.

An assignment is one folder in each of three places, all named by the assignment id::

    solutions/<id>/<name>.ipynb       the instructor's notebook: reference solution, visible and hidden tests
    assignments/<id>/<name>.ipynb     the student notebook, generated from it (python -m autograder release)
    autograder/graders/<id>/          its graders: test_<unit>.py, cases.py, reference_values.json, examples.py,
                                      mutants.py (a package of its own, loaded by path: see autograder.runtime.runner)

Everything the framework knows about an assignment it reads from the solution notebook: the *units* (code cells
with ``solution: true`` and a ``grade_id``), the *test cells* (``test_<unit>_visible`` / ``test_<unit>_hidden``,
with their points), the cells graded by hand, the *part* each unit belongs to (the level-1 heading above it), the
cells that define things (tags ``setup`` and ``api``) and, in the notebook's metadata under ``autograder``, the
grading environment (``{"env": {"NAME": "value"}}``; ``{root}`` in a value is the course's folder). No module of
the framework names an assignment, a unit or an assignment's setting.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path

from autograder import COURSE_ROOT

FRAMEWORK = COURSE_ROOT / "autograder"
GRADERS = FRAMEWORK / "graders"
DEFINITION_TAGS = ("setup", "api")  # given cells that define what the assignment's code uses (run when grading)
TEST_ID = re.compile(r"^test_(?P<unit>\w+?)_(?P<kind>visible|hidden)$")
# private in every graders folder
PRIVATE_GRADER_FILES = ("reference_values.json", "mutants.py", "examples.py", "bug_signatures.json")
# nbgrader's, in a course folder, and the verdicts and logs of cluster jobs
GRADING_OUTPUT = ("gradebook.db", "submitted", "autograded", "feedback", "reports", "cluster")
PACKAGES = ("torch", "torchvision", "timm", "numpy", "nbgrader", "pytest")  # their versions are part of a grade


class CourseError(Exception):
    """The course or an assignment is not set up as the framework expects; the message says what to do."""


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbgrader if isinstance(nbgrader, dict) else {}


def grade_id_of(cell) -> str | None:
    """A cell's nbgrader grade_id, or None (also when a submission's metadata holds something other than a name)."""
    grade_id = nbgrader_meta(cell).get("grade_id")
    return grade_id if isinstance(grade_id, str) and grade_id else None


def source_of(cell) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cells_by_grade_id(nb) -> dict:
    """The cells of a notebook that carry an nbgrader grade_id, by grade_id (the first of duplicates)."""
    found: dict = {}
    for cell in nb["cells"]:
        grade_id = grade_id_of(cell)
        if grade_id:
            found.setdefault(grade_id, cell)
    return found


def heading_above(nb, index: int) -> str:
    """The level-1 heading (``# ...``) a cell belongs to, e.g. 'Part II. The loss function'."""
    for cell in reversed(nb["cells"][:index + 1]):
        if cell.get("cell_type") == "markdown":
            for line in reversed(source_of(cell).splitlines()):
                if line.startswith("# "):
                    return line[2:].strip()
    return "the notebook"


def grader_folders(root: Path) -> list[Path]:
    """The graders folders of a course (``autograder/graders/<id>/``), whether or not the assignment has a solution."""
    folder = Path(root) / GRADERS.relative_to(COURSE_ROOT)
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__") if folder.is_dir() else []


def private_files(root: Path, db_url: str | None = None) -> list[Path]:
    """What no submission may read in a course folder: the solutions (nbgrader's ``source`` too), every assignment's
    reference values, planted bugs and examples (they quote the solution), the git history, the build outputs (the
    demo's executed solutions), the grading output of a class graded there and the gradebook of ``db_url`` (an
    SQLite file wherever it lives). Missing paths are listed too."""
    root = Path(root)
    found = [root / name for name in ("solutions", "source", ".git", "build", *GRADING_OUTPUT)]
    found += [folder / name for folder in grader_folders(root) for name in PRIVATE_GRADER_FILES]
    if db_url and db_url.startswith("sqlite:///"):
        found.append(Path(db_url[len("sqlite:///"):]))
    return found


def assignment_ids(root: Path = COURSE_ROOT) -> list[str]:
    """The assignments of the course: the folders of ``solutions/`` that hold a notebook."""
    folder = Path(root) / "solutions"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) if folder.is_dir() else []


def read_json(path: Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"the {what} {path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise CourseError(f"the {what} {path} is not valid JSON: {err}") from None


@dataclass
class Test:
    grade_id: str
    unit: str
    kind: str      # "visible" (students read and run it) or "hidden"
    points: float
    index: int     # position in the solution notebook


@dataclass
class Assignment:
    """One assignment: its notebooks, units, test cells, points, parts and grading settings."""

    id: str
    root: Path
    solution_path: Path
    solution: dict
    units: dict[str, str] = field(default_factory=dict)    # unit -> title of its part, in notebook order
    tests: dict[str, Test] = field(default_factory=dict)   # grade_id -> test cell
    manual: dict[str, float] = field(default_factory=dict)  # grade_id of a cell graded by hand -> points

    @classmethod
    def load(cls, assignment_id: str, root: Path = COURSE_ROOT) -> Assignment:
        root = Path(root)
        known = assignment_ids(root)
        if assignment_id not in known:
            raise CourseError(f"unknown assignment {assignment_id!r}: the course has "
                              f"{', '.join(known) if known else 'no assignments'} (folders of {root / 'solutions'})")
        notebooks = sorted((root / "solutions" / assignment_id).glob("*.ipynb"))
        if len(notebooks) != 1:
            raise CourseError(f"solutions/{assignment_id} holds {len(notebooks)} notebooks "
                              f"({', '.join(p.name for p in notebooks)}); an assignment has exactly one")
        self = cls(assignment_id, root, notebooks[0], read_json(notebooks[0], "instructor's notebook"))
        self._read_cells()
        return self

    def _read_cells(self) -> None:
        pending = []
        for index, cell in enumerate(self.solution["cells"]):
            meta = nbgrader_meta(cell)
            grade_id = meta.get("grade_id")
            if not grade_id:
                continue
            if meta.get("solution") and not meta.get("grade") and cell.get("cell_type") == "code":
                if grade_id in self.units:
                    raise CourseError(f"{self.solution_path.name}: two solution cells are called {grade_id!r}")
                self.units[grade_id] = heading_above(self.solution, index)
            elif meta.get("grade") and meta.get("solution"):
                self.manual[grade_id] = float(meta.get("points", 0))
            elif meta.get("grade"):
                pending.append((index, grade_id, float(meta.get("points", 0))))
        for index, grade_id, points in pending:
            match = TEST_ID.match(grade_id)
            if not match or match["unit"] not in self.units:
                raise CourseError(f"{self.solution_path.name}: the test cell {grade_id!r} must be called "
                                  f"test_<unit>_visible or test_<unit>_hidden, with a unit of {', '.join(self.units)}")
            self.tests[grade_id] = Test(grade_id, match["unit"], match["kind"], points, index)
        if not self.units:
            raise CourseError(f"{self.solution_path}: no solution cell with a grade_id, so nothing to grade")

    # ------------------------------------------------------------------------------------------------- places
    @property
    def notebook(self) -> str:
        """The notebook's file name, the same in solutions/, assignments/ and every submission."""
        return self.solution_path.name

    @property
    def release_path(self) -> Path:
        return self.root / "assignments" / self.id / self.notebook

    @property
    def graders_dir(self) -> Path:
        return self.root / GRADERS.relative_to(COURSE_ROOT) / self.id

    @property
    def values_path(self) -> Path:
        return self.graders_dir / "reference_values.json"

    def _generated(self, path: Path, what: str, command: str) -> dict:
        """A generated file, with the command that makes it when it is missing or broken."""
        try:
            return read_json(path, what)
        except CourseError as err:
            raise CourseError(f"{err}: run `python -m autograder {command} {self.id}`") from None

    @cached_property
    def release(self) -> dict:
        return self._generated(self.release_path, "student notebook", "release")

    @cached_property
    def values(self) -> dict:
        return self._generated(self.values_path, "reference values", "reference")

    # ------------------------------------------------------------------------------------------------- grading
    @property
    def max_score(self) -> float:
        return sum(test.points for test in self.tests.values())

    def unit_tests(self, unit: str) -> list[Test]:
        return [test for test in self.tests.values() if test.unit == unit]

    @property
    def settings(self) -> dict:
        found = self.solution.get("metadata", {}).get("autograder", {})
        return found if isinstance(found, dict) else {}

    def environment(self) -> dict[str, str]:
        """The environment a submission is graded in: nbgrader's marker plus the assignment's own settings."""
        env = {"NBGRADER_EXECUTION": "autograde"}
        for key, value in self.settings.get("env", {}).items():
            env[str(key)] = str(value).replace("{root}", str(self.root))
        return env

    def grader_check(self) -> None:
        """Every unit has its graders (``test_<unit>.py``); raise a clear error otherwise."""
        missing = [u for u in self.units if not (self.graders_dir / f"test_{u}.py").is_file()]
        if missing:
            raise CourseError(f"no graders for {', '.join(missing)} of {self.id}: expected "
                              + ", ".join(str(self.graders_dir / f"test_{u}.py") for u in missing))

    def reference_notebook(self, unit: str) -> dict:
        """The solution with ``unit``'s cell replaced by the released stub and the written answers removed.

        This is all a unit's grading process learns of the solution: the graded unit's own answer is not in it.
        """
        released = cells_by_grade_id(self.release)
        if unit not in released:
            raise CourseError(f"the student notebook of {self.id} has no cell {unit!r}: run "
                              f"`python -m autograder release {self.id}`")
        nb = copy.deepcopy(self.solution)
        for cell in nb["cells"]:
            meta = nbgrader_meta(cell)
            if meta.get("grade_id") == unit:
                cell["source"] = source_of(released[unit])
            elif meta.get("solution") and cell.get("cell_type") == "markdown":
                cell["source"] = ""
        return nb

    def private_files(self) -> list[Path]:
        """What a submission of this assignment must never read: the private files of its course and of the course
        the framework lives in (:func:`private_files`), and every other assignment's graders folder as a whole."""
        found: list[Path] = []
        for root in dict.fromkeys([self.root.resolve(), COURSE_ROOT]):
            found += private_files(root)
            found += [folder for folder in grader_folders(root) if folder.resolve() != self.graders_dir.resolve()]
        return list(dict.fromkeys(found))

    def fingerprint_files(self) -> list[Path]:
        """Every file that can change a grade: the framework, the course's runtime packages (every top-level
        package of the course, such as the data layer the notebooks import), the assignment's graders folder, and
        the solution and released notebooks."""
        framework = FRAMEWORK
        packages = [p for p in sorted(self.root.iterdir()) if (p / "__init__.py").is_file() and p != framework]
        files = sorted(p for p in framework.rglob("*.py") if p.relative_to(framework).parts[0] != "graders")
        files += [f for p in packages for f in sorted(p.rglob("*.py"))]
        files += sorted(p for p in self.graders_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return files + [self.solution_path, self.release_path]

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever anything that can change a grade changes (a rerun regrades everything then): the files
        of :meth:`fingerprint_files`, and the versions of Python and of the packages that compute grades."""
        digest = hashlib.sha256()
        for path in self.fingerprint_files():
            digest.update(str(path.name).encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
        digest.update(" ".join(versions()).encode())
        return digest.hexdigest()[:16]


def versions() -> list[str]:
    return [f"python=={sys.version.split()[0]}"] + [_version(p) for p in PACKAGES]


def _version(package: str) -> str:
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return f"{package}: none"


def find_assignment(notebook: dict, root: Path = COURSE_ROOT) -> Assignment:
    """The assignment a notebook belongs to: the one that shares the most graded cells with it."""
    grade_ids = set(cells_by_grade_id(notebook)) if isinstance(notebook, dict) and "cells" in notebook else set()
    best, shared = None, 0
    for aid in assignment_ids(root):
        assignment = Assignment.load(aid, root)
        common = len(grade_ids & (set(assignment.tests) | set(assignment.units)))
        if common > shared:
            best, shared = assignment, common
    if best is None:
        raise CourseError("the notebook has none of the graded cells of any assignment of the course "
                          f"({', '.join(assignment_ids(root)) or 'none'}); name the assignment with --assignment")
    return best
