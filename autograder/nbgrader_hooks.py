"""The course's nbgrader configuration, and how the engine's verdicts reach nbgrader's gradebook.

One configuration serves every use of nbgrader (:func:`configure`, called by ``nbgrader_config.py``, by
``python -m autograder release`` and by the class grader):

* ``generate_assignment``: solution regions become a stub that raises a ``NotImplementedError`` naming what to
  implement (:class:`NameStubs`, right after nbgrader's ``ClearSolutions``);
* ``autograde``: nbgrader's usual steps, except that nbgrader's ``Execute`` (which would run the notebook in a
  kernel and let its test cells decide) is replaced by :class:`ApplyVerdicts`: the engine grades the submitted
  file (:mod:`autograder.engine`) and each test cell gets the verdict as its output, which nbgrader's
  ``SaveAutoGrades`` then scores with its usual rule. Plain ``nbgrader autograde`` asks the engine itself
  (:class:`GradeWithEngine`); ``python -m autograder autograde`` hands over verdicts it already has.
  A graded cell a student copied loses its nbgrader metadata first (:class:`DropCopiedCells`): the engine has
  reported it, and nbgrader would otherwise refuse the whole notebook; deleted graded cells are put back.
"""

from __future__ import annotations

import atexit
import re
import threading
from pathlib import Path
from typing import ClassVar

import nbformat
from nbgrader.preprocessors import ClearSolutions, NbGraderPreprocessor
from traitlets import Float, Integer

from autograder.course import Assignment, nbgrader_meta

COURSE_ID = "dino-course"
STUB = "raise NotImplementedError()"  # nbgrader's code stub, named by NameStubs
IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "results", "*.pth"]
DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?P<kind>def|class)\s+(?P<name>\w+)")


# ------------------------------------------------------------------------------------------ generate_assignment
def stub_message(lines: list[str], index: int, fallback: str) -> str:
    """What the stub at ``lines[index]`` stands for, e.g. 'DINOLoss.forward' (enclosing class and function)."""
    indent = len(lines[index]) - len(lines[index].lstrip())
    names = []
    for line in reversed(lines[:index]):
        match = DEF.match(line)
        if match and len(match["indent"]) < indent:
            names.insert(0, match["name"])
            indent = len(match["indent"])
    return ".".join(names) or fallback


class NameStubs(NbGraderPreprocessor):
    """Replace nbgrader's generic code stub by one whose message names the class, method or cell to implement."""

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            lines = cell.source.split("\n")
            for i, line in enumerate(lines):
                if line.strip() == STUB:
                    what = stub_message(lines, i, f"the cell `{meta.get('grade_id', '')}`")
                    lines[i] = line.replace(STUB, f'raise NotImplementedError("{what} is not implemented yet: '
                                                  'write your code between START CODE HERE and END CODE HERE")')
            cell.source = "\n".join(lines)
        return cell, resources


# ---------------------------------------------------------------------------------------------------- autograde
class DropCopiedCells(NbGraderPreprocessor):
    """A graded cell that appears twice keeps its nbgrader metadata only in its first copy, and nbgrader metadata
    without a grade_id is dropped (nbgrader itself fails on either)."""

    def preprocess(self, nb, resources):
        seen = set()
        for cell in nb.cells:
            grade_id = nbgrader_meta(cell).get("grade_id")
            if "nbgrader" in cell.get("metadata", {}) and (not grade_id or grade_id in seen):
                del cell.metadata["nbgrader"]
            elif grade_id:
                seen.add(grade_id)
        return nb, resources


class ApplyVerdicts(NbGraderPreprocessor):
    """Stands in for nbgrader's ``Execute``: a failed test cell gets an error output with the failure's message."""

    verdicts: ClassVar[dict[str, dict]] = {}  # student -> verdict, handed over by the class grader

    def verdict(self, resources) -> dict:
        return self.verdicts[resources["nbgrader"]["student"]]

    def preprocess(self, nb, resources):
        tests = self.verdict(resources)["tests"]
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            cell.execution_count = 1
            test = tests.get(nbgrader_meta(cell).get("grade_id"))
            if test is not None:
                message = test["message"] or "failed"
                cell.outputs = [] if test["passed"] else [nbformat.v4.new_output(
                    "error", ename="GradingFailure", evalue=message, traceback=message.splitlines())]
        return nb, resources


class GradeWithEngine(ApplyVerdicts):
    """Plain ``nbgrader autograde``: the engine grades the submitted file (sandboxed) and its verdict is applied."""

    timeout = Float(300.0, help="seconds for one submission").tag(config=True)
    memory_mb = Integer(4096, help="MB of memory for one graded unit").tag(config=True)
    _engines: ClassVar[dict] = {}
    _lock = threading.Lock()

    def verdict(self, resources) -> dict:
        from nbgrader.coursedir import CourseDirectory

        from autograder.engine import Engine, Settings
        from autograder.sandbox import Limits

        info = resources["nbgrader"]
        course = CourseDirectory(config=self.config)
        submitted = Path(course.format_path(course.submitted_directory, info["student"], info["assignment"]))
        with self._lock:
            engine = self._engines.get(info["assignment"])
            if engine is None:
                assignment = Assignment.load(info["assignment"])
                hide = [Path(course.root) / name for name in ("submitted", "autograded", "feedback", "reports")]
                hide += [Path(course.db_url[len("sqlite:///"):])] if course.db_url.startswith("sqlite:///") else []
                engine = Engine(assignment, Settings(Limits(timeout=self.timeout, memory_mb=self.memory_mb)), hide)
                for warning in engine.warnings:
                    self.log.warning(warning)
                self._engines[info["assignment"]] = engine
                atexit.register(engine.close)
        path = submitted / f"{info['notebook']}.ipynb"
        verdict = engine.grade(path.read_bytes() if path.is_file() else None, path.name)
        self.log.info("%s: %s, %g / %g", info["student"], verdict["status"], verdict["score"], verdict["max_score"])
        return verdict


def configure(c, verdicts: type[ApplyVerdicts] = GradeWithEngine) -> None:
    """The course's nbgrader configuration (``c`` is a traitlets Config)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )

    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "assignments"
    c.CourseDirectory.ignore = IGNORE
    c.ClearSolutions.code_stub = {"python": STUB}
    c.ClearSolutions.text_stub = "*YOUR ANSWER HERE*"
    steps = list(GenerateAssignment.class_traits()["preprocessors"].default())
    steps.insert(steps.index(ClearSolutions) + 1, NameStubs)
    c.GenerateAssignment.preprocessors = steps
    c.OverwriteCells.add_missing_cells = True  # a deleted test cell is put back (the engine graded it anyway)
    c.Autograde.sanitize_preprocessors = [ClearOutput, DropCopiedCells, DeduplicateIds, OverwriteKernelspec,
                                          OverwriteCells, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [verdicts, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                           SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]


# ------------------------------------------------------------------------------------------------ class grading
class Recorder:
    """Records class-grading verdicts in nbgrader's gradebook through nbgrader's own ``autograde``."""

    def __init__(self, course, assignment: Assignment, stage: Path):
        from nbgrader.api import Gradebook, MissingEntry
        from nbgrader.apps import NbGraderAPI
        from traitlets.config import Config

        self.course, self.assignment, self.stage = course, assignment, Path(stage)
        config = Config()
        configure(config, ApplyVerdicts)
        config.CourseDirectory.root = str(course.root)
        config.CourseDirectory.db_url = course.db_url
        config.CourseDirectory.source_directory = str(assignment.solution_path.parent.parent)
        config.CourseDirectory.release_directory = str(self.stage / "release")
        config.CourseDirectory.submitted_directory = str(self.stage / "submitted")
        self.api = NbGraderAPI(config=config)
        with Gradebook(course.db_url, COURSE_ID) as gb:
            try:
                gb.find_assignment(assignment.id)
                known = True
            except MissingEntry:
                known = False
        if not known:  # nbgrader learns the assignment's cells from generating it (into the scratch folder)
            done = self.api.generate_assignment(assignment.id, force=True, create=True)
            if not done["success"]:
                raise RuntimeError(f"nbgrader generate_assignment failed:\n{done.get('error') or done.get('log')}")

    def record(self, result: dict, raw: bytes | None) -> None:
        """Put one student's verdict into the gradebook and ``autograded/``. The notebook nbgrader records is the
        submitted one, or the released one (every cell scoring zero) when the submission cannot be read."""
        import shutil

        from autograder.engine import staged_notebook

        student = result["student"]
        folder = self.stage / "submitted" / student / self.assignment.id
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        target = folder / self.assignment.notebook
        if raw is not None and result["status"] not in ("invalid-notebook", "missing"):
            target.write_bytes(raw)
        else:
            nbformat.write(nbformat.from_dict(staged_notebook(self.assignment, result)), target)
        timestamp = self.course.submission(student).parent / "timestamp.txt"
        if timestamp.is_file():
            shutil.copy(timestamp, folder / "timestamp.txt")
        ApplyVerdicts.verdicts[student] = result
        try:
            done = self.api.autograde(self.assignment.id, student, force=True, create=True)
        finally:
            ApplyVerdicts.verdicts.pop(student, None)
        if not done["success"]:
            raise RuntimeError(f"nbgrader autograde failed for {student}:\n{done.get('error') or done.get('log')}")
