"""Example submissions for class grading, built from the released notebook and the solution.

``write_class(folder, names)`` writes ``submitted/<name>/01_dino/dino.ipynb`` for each example; the demo grades a
few, the tests grade all of them, the benchmark generates a class of any size. Every example says what it is and
the status it must get; its score is checked against a clean run of the honest parts.

    python -m autograder.examples FOLDER [NAME ...]     # write a course folder with these examples (default: all)
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.units import UNITS, cells_by_grade_id, nbgrader_meta
from dinocourse.notebook import RELEASE_NOTEBOOK, SOLUTION_NOTEBOOK

ASSIGNMENT = "01_dino"


def correct():
    """The released notebook with every solution cell (and the written answer) filled in from the solution."""
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    solution = cells_by_grade_id(nbformat.read(SOLUTION_NOTEBOOK, as_version=4))
    for cell in release.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            cell.source = solution[meta["grade_id"]].source
    return release


def stubs():
    return nbformat.read(RELEASE_NOTEBOOK, as_version=4)


def _edit(nb, grade_id: str, before: str = "", after: str = "", replace: tuple[str, str] | None = None):
    cell = cells_by_grade_id(nb)[grade_id]
    source = cell.source
    if replace:
        if replace[0] not in source:
            raise ValueError(f"{grade_id}: {replace[0]!r} is not in the cell")
        source = source.replace(replace[0], replace[1])
    cell.source = before + source + after
    return nb


def _with(grade_id: str, before: str = "", after: str = "", replace=None, base=correct):
    return lambda: _edit(base(), grade_id, before, after, replace)


def _partial():
    nb = _edit(correct(), "dino_loss", replace=("(teacher_output - self.center) / teacher_temp",
                                                 "teacher_output / teacher_temp"))
    cells_by_grade_id(nb)["dino_trainer"].source = cells_by_grade_id(stubs())["dino_trainer"].source
    return nb


def _duplicated():
    nb = correct()
    index = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == "test_dino_loss_hidden")
    duplicate = copy.deepcopy(nb.cells[index])
    duplicate.id = f"{duplicate.get('id', 'cell')}-copy"
    nb.cells.insert(index, duplicate)
    return nb


def _deleted():
    nb = correct()
    nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") not in ("test_dino_loss_visible", "schedules")]
    return nb


def _edited_tests():
    nb = stubs()
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            cell.source = "print('All checks passed')"
            meta["points"] = 100
    return nb


def _other_assignment():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("def add(a, b):\n    return a + b")
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": "add", "locked": False, "schema_version": 3,
                                 "solution": True, "task": False}
    nb.cells = [nbformat.v4.new_markdown_cell("# Assignment 2: k-means"), cell]
    return nb


def _raw(data: bytes):
    return lambda: data


PROTECTED_READ = """
try:
    import autograder.cases as _c
    print(open(_c.VALUES_FILE).read()[:100])
except Exception:
    pass
try:
    import dinocourse.notebook as _n
    print(open(_n.SOLUTION_NOTEBOOK).read()[:100])
except Exception:
    pass
"""

GRADEBOOK_WRITE = """
import sqlite3
try:
    import dinocourse
    _db = sqlite3.connect(str(dinocourse.REPO_ROOT / "gradebook.db"))
    _db.execute("update grade set auto_score = 100")
    _db.commit()
except Exception:
    pass
"""

MONKEYPATCH = """
import torch
import autograder
import autograder.checks
autograder.checks.expect_close = lambda *args, **kwargs: None
autograder.checks.expect = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
autograder.check = lambda *args, **kwargs: print("all checks passed")
"""


@dataclass(frozen=True)
class Example:
    build: Callable          # returns a notebook or raw bytes
    status: str              # the status grading must give
    honest: dict             # units whose points are those of the same unit in `like`, the rest score 0
    what: str

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = self.build()
        if isinstance(made, bytes):
            path.write_bytes(made)
        else:
            nbformat.write(made, path)


ALL = set(UNITS)
EXAMPLES: dict[str, Example] = {
    "correct": Example(correct, "ok", {"correct": ALL}, "every part solved"),
    "partial": Example(_partial, "ok", {"correct": ALL - {"dino_loss", "dino_trainer"}},
                       "no centering in the loss, trainer left as the stub"),
    "untouched": Example(stubs, "ok", {}, "the released notebook, nothing written"),
    "infinite-loop": Example(_with("dino_loss", after="\nwhile True:\n    pass\n"), "timeout",
                             {"correct": ALL - {"dino_loss"}}, "an endless loop in the loss cell"),
    "os-exit": Example(_with("dino_head", after="\nimport os\nos._exit(3)\n"), "crashed",
                       {"correct": ALL - {"dino_head"}}, "os._exit in the head cell"),
    "kernel-kill": Example(_with("schedules", after="\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"),
                           "crashed", {"correct": ALL - {"schedules"}}, "the process kills itself (SIGKILL)"),
    "memory-bomb": Example(_with("pseudo_labels", after="\nhog = [bytearray(256 << 20) for _ in range(256)]\n"),
                           "memory", {"correct": ALL - {"pseudo_labels"}}, "allocates 64 GB in the pseudo-label cell"),
    "fork-bomb": Example(_with("schedules", after="\nimport os\nwhile True:\n    os.fork()\n"), "crashed",
                         {"correct": ALL - {"schedules"}}, "forks without end in the schedules cell"),
    "network": Example(_with("dino_head", before="try:\n    import urllib.request\n    urllib.request.urlopen("
                             "'http://example.com', timeout=3)\nexcept Exception:\n    pass\n"), "ok",
                       {"correct": ALL}, "downloads something (blocked)"),
    "write-outside": Example(_with("dino_loss", before="try:\n    import dinocourse\n    open(dinocourse.REPO_ROOT / "
                                   "'PWNED.txt', 'w').write('x')\nexcept Exception:\n    pass\n"), "ok",
                             {"correct": ALL}, "writes into the course folder (blocked)"),
    "read-solutions": Example(_with("dino_loss", before=PROTECTED_READ), "tampered",
                              {"correct": ALL - {"dino_loss"}}, "reads the solution notebook and the reference values"),
    "gradebook-write": Example(_with("dino_head", before=GRADEBOOK_WRITE), "tampered",
                               {"correct": ALL - {"dino_head"}}, "writes scores into the gradebook"),
    "monkeypatch": Example(_with("dino_loss", before=MONKEYPATCH, base=stubs), "tampered", {},
                           "patches the graders, torch.allclose and autograder.check (loss left as the stub)"),
    "fake-prints": Example(_with("dino_head", after="\nprint('test_dino_head_hidden: 2 / 2 points, all checks "
                                 "passed')\n", base=stubs), "ok", {}, "prints fake results"),
    "huge-output": Example(_with("dino_head", after="\nfor _ in range(200):\n    print('x' * 1_000_000)\n"), "ok",
                           {"correct": ALL}, "prints 200 MB"),
    "stderr-noise": Example(_with("dino_loss", before="import sys, warnings\nprint('noise', file=sys.stderr)\n"
                                  "warnings.warn('noise')\n"), "ok", {"correct": ALL}, "writes to stderr"),
    "duplicated-cells": Example(_duplicated, "tampered", {"correct": ALL}, "a copied hidden test cell"),
    "deleted-cells": Example(_deleted, "tampered", {"correct": ALL - {"schedules"}},
                             "deleted a visible test cell and the schedules cell"),
    "edited-tests": Example(_edited_tests, "tampered", {}, "test cells replaced by prints, worth 100 points each"),
    "not-a-notebook": Example(_raw(b"import torch\nprint('my solution')\n"), "invalid-notebook", {},
                              "a Python script named dino.ipynb"),
    "empty-notebook": Example(lambda: nbformat.v4.new_notebook(), "invalid-notebook", {}, "a notebook with no cells"),
    "other-assignment": Example(_other_assignment, "invalid-notebook", {}, "a notebook of another assignment"),
    "non-utf8": Example(_raw(b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": "\xff\xfe"}'),
                        "invalid-notebook", {}, "bytes that are not UTF-8"),
}
DEMO = ("correct", "partial", "untouched", "infinite-loop", "monkeypatch", "not-a-notebook")


def write_class(course: Path, names=None, assignment: str = ASSIGNMENT) -> list[str]:
    """Write ``course/submitted/<name>/<assignment>/dino.ipynb`` for every example named (default: all)."""
    names = list(names or EXAMPLES)
    for name in names:
        EXAMPLES[name].write(Path(course) / "submitted" / name / assignment / "dino.ipynb")
    return names


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    names = write_class(Path(argv[0]), argv[1:] or None)
    print(json.dumps({n: EXAMPLES[n].status for n in names}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
