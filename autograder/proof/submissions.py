"""Example submissions: builders every assignment can use, and each assignment's own list.

An assignment's ``autograder/graders/<id>/examples.py`` defines ``EXAMPLES`` (name -> :class:`Example`) and
``DEMO`` (the names ``make demo`` grades); ``mutants.py`` next to it defines ``MUTANTS`` and ``ALTERNATIVES``:
edits of the solution that plant one classic bug each, or solve a unit differently (see :func:`from_solution`).
The demo grades a few examples, the tests grade all of them through every grading path, the benchmark builds a class
of any size.

    python -m autograder examples ASSIGNMENT FOLDER [NAME ...]   # write submitted/<name>/<id>/<notebook> (default: all)
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, cells_by_grade_id, nbgrader_meta, source_of


@dataclass(frozen=True)
class Example:
    build: Callable          # assignment -> a notebook (dict) or raw bytes
    status: str              # the status grading must give
    honest: frozenset        # units that earn what the correct notebook earns for them; the others earn nothing
    what: str
    hostile: bool = False    # attacks the grader or the machine (no plain kernel could run it to the end)

    def write(self, assignment: Assignment, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = self.build(assignment)
        path.write_bytes(made if isinstance(made, bytes) else (json.dumps(made, indent=1) + "\n").encode())


def stubs(assignment: Assignment) -> dict:
    """The released notebook, untouched."""
    return copy.deepcopy(assignment.release)


def correct(assignment: Assignment, solution: dict | None = None) -> dict:
    """The released notebook with every solution cell (and written answer) filled in from the solution."""
    nb = stubs(assignment)
    answers = cells_by_grade_id(solution or assignment.solution)
    for cell in nb["cells"]:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            cell["source"] = source_of(answers[meta["grade_id"]])
    return nb


def from_solution(assignment: Assignment, edits: tuple[str, ...]) -> dict:
    """The correct submission after (old, new, old, new, ...) text edits of the solution's cells.

    Every old text must occur exactly once in the solution, so that an edit cannot silently stop applying when the
    solution changes.
    """
    solution = copy.deepcopy(assignment.solution)
    for old, new in zip(edits[::2], edits[1::2], strict=True):
        hits = [cell for cell in solution["cells"] if old in source_of(cell)]
        if len(hits) != 1 or source_of(hits[0]).count(old) != 1:
            raise ValueError(f"the edit no longer matches the solution exactly once: {old!r}")
        hits[0]["source"] = source_of(hits[0]).replace(old, new)
    return correct(assignment, solution)


def edit(nb: dict, grade_id: str, before: str = "", after: str = "", replace: tuple[str, str] | None = None) -> dict:
    """Add code before/after a cell's source, or replace a text in it."""
    cell = cells_by_grade_id(nb)[grade_id]
    source = source_of(cell)
    if replace:
        if replace[0] not in source:
            raise ValueError(f"{grade_id}: {replace[0]!r} is not in the cell")
        source = source.replace(*replace)
    cell["source"] = before + source + after
    return nb


def with_code(grade_id: str, before: str = "", after: str = "", replace=None, base=correct) -> Callable:
    """A builder: ``base`` with code added to (or replaced in) one cell."""
    return lambda assignment: edit(base(assignment), grade_id, before, after, replace)


def raw(data: bytes) -> Callable:
    return lambda assignment: data


def other_assignment(assignment: Assignment) -> dict:
    """A notebook of some other course: no graded cell of this assignment."""
    cell = {"cell_type": "code", "execution_count": None, "outputs": [], "source": "def add(a, b):\n    return a + b",
            "metadata": {"nbgrader": {"grade": False, "grade_id": "add", "locked": False, "schema_version": 3,
                                      "solution": True, "task": False}}}
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Assignment 9: k-means"}, cell],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


def empty_notebook(assignment: Assignment) -> dict:
    return {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


def edited_tests(assignment: Assignment) -> dict:
    """The released notebook whose test cells print success and claim 100 points each."""
    nb = stubs(assignment)
    for cell in nb["cells"]:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            cell["source"] = "print('All checks passed')"
            meta["points"] = 100
    return nb


def duplicated_test(grade_id: str) -> Callable:
    """The correct notebook with a copy of one test cell."""
    def build(assignment):
        nb = correct(assignment)
        index = next(i for i, c in enumerate(nb["cells"]) if nbgrader_meta(c).get("grade_id") == grade_id)
        duplicate = copy.deepcopy(nb["cells"][index])
        duplicate["id"] = f"{duplicate.get('id', 'cell')}-copy"
        nb["cells"].insert(index, duplicate)
        return nb
    return build


def in_body(grade_id: str, signature: str, code: str, base=correct) -> Callable:
    """A builder: ``code`` runs first in the body of the function or method whose ``def`` line starts with
    ``signature`` in one cell (so it runs whenever a grader calls it)."""
    def build(assignment):
        nb = base(assignment)
        cell = cells_by_grade_id(nb)[grade_id]
        lines = source_of(cell).split("\n")
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(signature))
        end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith(":"))
        indent = " " * (len(lines[start]) - len(lines[start].lstrip()) + 4)
        lines[end + 1:end + 1] = [indent + line for line in code.strip("\n").split("\n")]
        cell["source"] = "\n".join(lines)
        return nb
    return build


def old_metadata_schema(assignment: Assignment) -> dict:
    """The correct notebook whose solution cells carry nbgrader metadata of schema version 1 (as an older nbgrader
    writes it; nbgrader's own autograde stops the whole class at such a notebook)."""
    nb = correct(assignment)
    for cell in nb["cells"]:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and not meta.get("grade"):
            meta["schema_version"] = 1
    return nb


def foreign_cells(assignment: Assignment) -> dict:
    """The correct notebook with cells pasted in from other notebooks, whose nbgrader metadata nbgrader's own
    checks refuse: a test cell of another notebook (unknown grade id, points as text), a markdown cell marked as a
    solution only, a task written in a code cell, a grade id with spaces."""
    nb = correct(assignment)

    def pasted(kind: str, source: str, **meta) -> dict:
        cell = {"cell_type": kind, "id": f"pasted-{len(nb['cells'])}", "metadata": {"nbgrader": {
            "grade": False, "locked": False, "solution": False, "schema_version": 3, **meta}}, "source": source}
        return {**cell, "execution_count": None, "outputs": []} if kind == "code" else cell

    nb["cells"] += [pasted("code", "assert True", grade=True, locked=True, grade_id="test_from_last_year",
                           points="two"),
                    pasted("markdown", "My notes on the lecture.", solution=True, grade_id="notes"),
                    pasted("code", "x = 1", task=True, grade_id="task_1"),
                    pasted("code", "y = 2", solution=True, grade_id="my answer")]
    return nb


def without_cells(*grade_ids: str) -> Callable:
    """The correct notebook without some graded cells."""
    def build(assignment):
        nb = correct(assignment)
        nb["cells"] = [c for c in nb["cells"] if nbgrader_meta(c).get("grade_id") not in grade_ids]
        return nb
    return build


# Hostile code, added to a cell of a correct (or untouched) notebook by an assignment's examples.
PROTECTED_READ = """
try:
    import autograder.assignment.course as _c
    for _p in [*_c.COURSE_ROOT.glob("autograder/graders/*/reference_values.json"),
               *_c.COURSE_ROOT.glob("solutions/*/*.ipynb")]:
        print(open(_p).read()[:100])
except Exception:
    pass
"""

GRADEBOOK_WRITE = """
import sqlite3
try:
    import autograder.assignment.course as _c
    _db = sqlite3.connect(str(_c.COURSE_ROOT / "gradebook.db"))
    _db.execute("update grade set auto_score = 100")
    _db.commit()
except Exception:
    pass
"""

MONKEYPATCH = """
import torch
import autograder
import autograder.runtime.checks
autograder.runtime.checks.expect_close = lambda *args, **kwargs: None
autograder.runtime.checks.expect = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
autograder.check = lambda *args, **kwargs: print("all checks passed")
"""

WRITE_OUTSIDE = """
try:
    import autograder.assignment.course as _c
    open(_c.COURSE_ROOT / 'PWNED.txt', 'w').write('x')
except Exception:
    pass
"""

# a memory bomb that retries what fails (it never ends by itself: without a memory limit it swaps or runs forever)
RETRY_ALLOCATIONS = """
_hog = []
while True:
    try:
        _hog.append(bytearray(64 << 20))
    except MemoryError:
        pass
"""

NETWORK = """
try:
    import urllib.request
    urllib.request.urlopen('http://example.com', timeout=3)
except Exception:
    pass
"""


def examples(assignment: Assignment):
    """The assignment's ``examples`` module (``EXAMPLES``, ``DEMO``)."""
    from autograder.runtime.runner import graders_package

    return importlib.import_module(f"{graders_package(assignment.graders_dir)}.examples")


def mutants(assignment: Assignment):
    """The assignment's ``mutants`` module (``MUTANTS``, ``ALTERNATIVES``)."""
    from autograder.runtime.runner import graders_package

    return importlib.import_module(f"{graders_package(assignment.graders_dir)}.mutants")


def write_class(assignment: Assignment, course: Path, names=None, catalog: dict | None = None) -> list[str]:
    """Write ``course/submitted/<name>/<id>/<notebook>`` for every example named (default: all)."""
    catalog = catalog if catalog is not None else examples(assignment).EXAMPLES
    names = list(names or catalog)
    for name in names:
        catalog[name].write(assignment, Path(course) / "submitted" / name / assignment.id / assignment.notebook)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder examples", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("folder", type=Path, help="the course folder to write submitted/ into")
    parser.add_argument("names", nargs="*", help="examples to write (default: all)")
    parser.add_argument("--root", type=Path, default=COURSE_ROOT, help="the course's folder")
    args = parser.parse_args(argv)
    assignment = Assignment.load(args.assignment, args.root.resolve())
    catalog = examples(assignment).EXAMPLES
    unknown = [n for n in args.names if n not in catalog]
    if unknown:
        print(f"error: no example {', '.join(map(repr, unknown))} of {assignment.id}; its examples are: "
              f"{', '.join(catalog)}", file=sys.stderr)
        return 2
    names = write_class(assignment, args.folder, args.names or None)
    print(f"wrote {len(names)} submission(s) into {args.folder / 'submitted'}; the status each must get:")
    print(json.dumps({n: catalog[n].status for n in names}, indent=1))
    print(f"next: python -m autograder autograde {assignment.id} --course {args.folder}")
    return 0
