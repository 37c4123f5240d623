"""Record a class-grading result in nbgrader's own gradebook, through nbgrader's own ``autograde``.

nbgrader's autograde runs in this (trusted) process with its usual steps (student and submission rows, timestamps
and late penalties, the autograded notebook, a score per graded cell) except one: instead of executing the notebook,
:class:`ApplyScores` writes each test cell's verdict (decided by the sandboxed graders) as the cell's output, which
nbgrader's ``SaveAutoGrades`` then scores with its usual rule. The notebook nbgrader sees is the released notebook
with the student's solution cells and written answers in place (a submission that cannot be read gets the released
notebook, so every cell scores zero); the hand-graded answer is then graded in ``nbgrader formgrader`` as usual.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import ClassVar

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.units import nbgrader_meta


class ApplyScores(NbGraderPreprocessor):
    """Stands in for nbgrader's ``Execute``: a failed test cell gets an error output with the failure message."""

    results: ClassVar[dict[str, dict]] = {}

    def preprocess(self, nb, resources):
        result = self.results[resources["nbgrader"]["student"]]
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            test = result["tests"].get(nbgrader_meta(cell).get("grade_id"))
            cell.execution_count = 1
            if test is not None:
                cell.outputs = [] if test["passed"] else [nbformat.v4.new_output(
                    "error", ename="GradingFailure", evalue=test["message"] or "failed",
                    traceback=(test["message"] or "failed").splitlines())]
        return nb, resources


def staged_notebook(release, result: dict):
    """The released notebook with the student's own solution cells and answers (from the trusted inspection)."""
    nb = copy.deepcopy(release)
    sources = {**{u: c for u, c in result.get("cells", {}).items() if c is not None}, **result.get("answers", {})}
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in sources and nbgrader_meta(cell).get("solution"):
            cell.source = sources[grade_id]
    return nb


_API: dict = {}


def _api(course, stage: Path, source: Path):
    key = (str(course.root), course.db_url, str(stage))
    if key in _API:
        return _API[key]
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    from autograder.release import STUB, preprocessors

    config = Config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.course_id = "dino-course"
    config.CourseDirectory.db_url = course.db_url
    config.CourseDirectory.source_directory = str(source.parent.parent)
    config.CourseDirectory.release_directory = str(stage / "release")
    config.CourseDirectory.submitted_directory = str(stage / "submitted")
    config.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "results", "*.pth"]
    config.ClearSolutions.code_stub = {"python": STUB}
    config.ClearSolutions.text_stub = "*YOUR ANSWER HERE*"
    config.GenerateAssignment.preprocessors = preprocessors()
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    config.Autograde.autograde_preprocessors = [ApplyScores, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                                SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    api = NbGraderAPI(config=config)
    with Gradebook(course.db_url, "dino-course") as gb:
        try:
            gb.find_assignment(course.assignment)
            known = True
        except MissingEntry:
            known = False
    if not known:  # nbgrader learns the assignment's cells from generating it (into the scratch folder)
        done = api.generate_assignment(course.assignment, force=True, create=True)
        if not done["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{done.get('error') or done.get('log')}")
    _API[key] = api
    return api


def record(course, assignment, result: dict, stage: Path, source: Path) -> None:
    """Put ``result`` into the gradebook and ``autograded/`` with nbgrader's autograde."""
    from autograder.autograde import NOTEBOOK

    api = _api(course, stage, source)
    student = result["student"]
    folder = stage / "submitted" / student / course.assignment
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    nbformat.write(staged_notebook(assignment.release, result),
                   folder / f"{NOTEBOOK}.ipynb")
    timestamp = course.submission(student).parent / "timestamp.txt"
    if timestamp.is_file():
        shutil.copy(timestamp, folder / "timestamp.txt")
    ApplyScores.results[student] = result
    try:
        done = api.autograde(course.assignment, student, force=True, create=True)
    finally:
        ApplyScores.results.pop(student, None)
    if not done["success"]:
        raise RuntimeError(f"nbgrader autograde failed for {student}:\n{done.get('error') or done.get('log')}")
