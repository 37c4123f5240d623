"""A submitted notebook, read and checked without running any of it, and the program the engine runs from it.

:func:`inspect` never executes anything. It decides

* whether the file can be graded at all (``missing``; ``invalid-notebook``: not UTF-8, not JSON, not nbformat 4, no
  cells, another assignment's notebook);
* what was tampered with: test cells edited, deleted or copied, nbgrader metadata changed, unknown grade ids (test
  cells are never run from a submission, so none of this can raise a score; it is reported);
* the **program**: the code cells that run, in the notebook's order, as a kernel would run them when the student
  presses "Run all", except the cells that cost time and decide nothing:

  ========================================  =====================================================================
  cell of the submission                    what runs
  ========================================  =====================================================================
  a solution cell (a unit)                  the student's code
  a cell the student added or edited        the student's code (a helper, an extra import, ...)
  a given cell tagged ``setup`` or ``api``  the student's copy of it (an import added to the setup cell counts)
  another given cell (training, plots)      nothing (it runs experiments, which are not graded)
  a visible test cell                       the instructor's code of that cell, in the graded unit's process only
  a hidden test cell                        nothing (the engine runs the unit's graders instead)
  ========================================  =====================================================================
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field

from autograder.assignment.course import (
    DEFINITION_TAGS,
    Assignment,
    cells_by_grade_id,
    grade_id_of,
    heading_above,
    nbgrader_meta,
    source_of,
)
from autograder.grading.verdict import Status


@dataclass
class Submission:
    status: Status | None = None                   # INVALID_NOTEBOOK / MISSING (NOT_GRADED) when it cannot be graded
    problems: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    cells: dict = field(default_factory=dict)      # unit -> the student's source (None: no such cell)
    answers: dict = field(default_factory=dict)    # grade_id of a hand-graded cell -> the student's text
    program: list[dict] = field(default_factory=list)
    sha256: str = ""


def inspect(raw: bytes | None, assignment: Assignment, name: str | None = None) -> Submission:
    """Read and check a submitted notebook (``raw`` bytes, None when no file was submitted)."""
    name = name or assignment.notebook
    found = Submission(cells=dict.fromkeys(assignment.units))
    if raw is None:
        found.status = Status.MISSING
        found.problems.append(f"no {name} was submitted")
        return found
    found.sha256 = hashlib.sha256(raw).hexdigest()
    nb = _parse(raw, found)
    if nb is None:
        return found
    released = cells_by_grade_id(assignment.release)
    seen: dict[str, list] = {}
    for cell in nb.cells:
        grade_id = grade_id_of(cell)
        if grade_id:
            seen.setdefault(grade_id, []).append(cell)
    if not set(seen) & set(released):
        found.status = Status.INVALID_NOTEBOOK
        found.problems.append(
            f"this is not the {assignment.id} notebook: it has none of its graded cells"
            + (f" (its graded cells are {', '.join(sorted(seen)[:5])})" if seen else
               " (it has no graded cells at all)" if nb.cells else " (it has no cells at all)"))
        return found
    _check_graded_cells(seen, released, assignment, found)
    found.program = program(nb, assignment)
    return found


def _check_graded_cells(seen: dict, released: dict, assignment: Assignment, found: Submission) -> None:
    instructor = cells_by_grade_id(assignment.solution)
    for grade_id in sorted(set(seen) - set(released)):
        found.tampering.append(f"a cell claims grade_id {grade_id!r}, which is not part of the assignment")
    for grade_id, original in released.items():
        meta = nbgrader_meta(original)
        copies = seen.get(grade_id, [])
        is_test = not meta.get("solution")
        if not copies:
            if is_test:
                found.tampering.append(f"the test cell {grade_id} was deleted")
            else:
                found.problems.append(f"the cell {grade_id} is missing (deleted, or its metadata changed)")
            continue
        if len(copies) > 1:
            (found.tampering if is_test else found.problems).append(
                f"the cell {grade_id} appears {len(copies)} times" + (" (a copied test cell)" if is_test else
                                                                        "; every copy runs, in order, as in a kernel"))
        for cell in copies:
            changed = [key for key in ("grade", "solution", "locked", "points", "grade_id")
                       if nbgrader_meta(cell).get(key) != meta.get(key)]
            if changed or cell.cell_type != original.get("cell_type"):
                found.tampering.append(f"the metadata of cell {grade_id} was changed "
                                       f"({', '.join(changed) or 'cell type'})")
                break
        accepted = {source_of(original), source_of(instructor.get(grade_id, original))}  # released or instructor's
        if is_test and any(cell.source not in accepted for cell in copies):
            found.tampering.append(f"the test cell {grade_id} was edited")
        if grade_id in assignment.units:
            found.cells[grade_id] = copies[-1].source  # the copy that defines the names in the end
        elif grade_id in assignment.manual:
            found.answers[grade_id] = copies[0].source


def _parse(raw: bytes, found: Submission):
    import nbformat

    found.status = Status.INVALID_NOTEBOOK
    if not raw.strip():
        found.problems.append("the file is empty")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        found.problems.append(f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x} at position {err.start}); "
                              "a notebook is a UTF-8 JSON file: save it again from Jupyter")
        return None
    try:
        data = json.loads(text)
    except ValueError as err:
        found.problems.append(f"the file is not a Jupyter notebook (not JSON: {err}); submit the .ipynb file itself")
        return None
    try:
        with warnings.catch_warnings():  # nbformat warns about (and fixes) duplicated cell ids
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - every schema error means the same to the student
        found.problems.append(f"the file is JSON but not a valid notebook in nbformat 4 ({type(data).__name__}: "
                              f"{str(err).splitlines()[0][:200]})")
        return None
    found.status = None
    return nb


def program(nb, assignment: Assignment) -> list[dict]:
    """The cells the engine runs, in order (see the module's docstring); each a JSON-ready dict."""
    release = assignment.release
    by_id = {c.get("id"): c for c in release["cells"] if c.get("id")}
    given_sources = {source_of(c): c for c in release["cells"] if c.get("cell_type") == "code"
                     and not grade_id_of(c)}
    solution_tests = {g: source_of(c) for g, c in cells_by_grade_id(assignment.solution).items()
                      if g in assignment.tests}
    out: list[dict] = []
    placed: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = grade_id_of(cell)
        original = by_id.get(cell.get("id"))
        if grade_id not in assignment.tests and grade_id not in assignment.units and original is not None:
            grade_id = grade_id_of(original) or grade_id  # a graded cell whose metadata was lost
        where = heading_above(nb, index)
        entry = {"index": index, "source": cell.source, "unit": None, "grade_id": None,
                 "label": f"code cell {index + 1} (under '{where}')"}
        if grade_id in assignment.tests:
            test = assignment.tests[grade_id]
            if test.kind == "visible" and grade_id not in placed:
                placed.add(grade_id)
                out.append({**entry, "kind": "visible", "unit": test.unit, "grade_id": grade_id,
                            "source": solution_tests[grade_id], "label": f"the visible test {grade_id}"})
            continue
        if grade_id in assignment.units:
            out.append({**entry, "kind": "unit", "unit": grade_id, "grade_id": grade_id,
                        "label": f"your cell for {assignment.units[grade_id]} ({grade_id})"})
            continue
        if original is None:
            original = given_sources.get(cell.source)
        if original is not None and not grade_id_of(original):
            if set(original.get("metadata", {}).get("tags", [])) & set(DEFINITION_TAGS):
                out.append({**entry, "kind": "given"})
            continue  # a given experiment (training, a figure): not part of grading
        out.append({**entry, "kind": "student"})  # a cell the student added or rewrote
    for grade_id, test in assignment.tests.items():  # a deleted visible test runs right after its unit's cell
        if test.kind == "visible" and grade_id not in placed:
            after = max((i for i, c in enumerate(out) if c["unit"] == test.unit and c["kind"] == "unit"),
                        default=len(out) - 1)
            out.insert(after + 1, {"index": -1, "kind": "visible", "unit": test.unit, "grade_id": grade_id,
                                   "source": solution_tests[grade_id], "label": f"the visible test {grade_id}"})
    for position, entry in enumerate(out):
        entry["pos"] = position  # what the engine calls a cell (a restored visible test has no index)
    return out
