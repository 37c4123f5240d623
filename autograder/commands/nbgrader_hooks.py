"""The course's nbgrader configuration, and how the engine's verdicts reach nbgrader's gradebook.

One configuration serves every use of nbgrader (:func:`configure`, called by ``nbgrader_config.py``, by
``python -m autograder release`` and by the class grader):

* ``generate_assignment``: solution regions become a stub that raises a ``NotImplementedError`` naming what to
  implement (:class:`NameStubs`, right after nbgrader's ``ClearSolutions``);
* ``autograde``: nbgrader's usual steps, except that nbgrader's ``Execute`` (which would run the notebook in a
  kernel and let its test cells decide) is replaced by :class:`ApplyVerdicts`: the engine grades the submitted
  file (:mod:`autograder.grading.engine`) and each test cell gets the verdict as its output, which nbgrader's
  ``SaveAutoGrades`` then scores with its usual rule. Plain ``nbgrader autograde`` asks the engine itself
  (:class:`GradeWithEngine`); ``python -m autograder autograde`` hands over verdicts it already has.
  Before nbgrader's own checks, every graded cell carries its released metadata (:class:`MatchReleasedCells`; the
  engine has reported every change) and a file that is not a notebook is read as the released one
  (:class:`ReadAnyNotebook`), so nbgrader records every submission instead of refusing one. After each written
  answer, the autograded notebook (what formgrader shows) holds the solution's model answer and rubric
  (:class:`AddRubrics`);
* ``generate_feedback``: nbgrader's steps, the rubric cells dropped first (:class:`DropRubrics`).
"""

from __future__ import annotations

import atexit
import copy
import re
import threading
from pathlib import Path
from typing import ClassVar

import nbformat
from nbconvert.exporters import NotebookExporter
from nbgrader.preprocessors import ClearSolutions, NbGraderPreprocessor
from traitlets import Float, Integer

from autograder.assignment.course import Assignment, cells_by_grade_id, grade_id_of, private_files, source_of
from autograder.grading.verdict import UNGRADED, Verdict
from autograder.sandbox.isolation import Limits

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
_ASSIGNMENTS: dict[str, Assignment] = {}  # assignment id -> the assignment being recorded (the class grader's)


def assignment_for(assignment_id: str) -> Assignment:
    """The assignment nbgrader is grading: the class grader's (handed over by :class:`Recorder`), else the course's."""
    if assignment_id not in _ASSIGNMENTS:
        _ASSIGNMENTS[assignment_id] = Assignment.load(assignment_id)
    return _ASSIGNMENTS[assignment_id]


class ReadAnyNotebook(NotebookExporter):
    """Autograde's reader: a submission that is not a valid notebook (not UTF-8, not JSON, not nbformat 4) is read as
    the released notebook, so that nbgrader records it (every cell scores zero; the engine's verdict says why:
    ``invalid-notebook``) instead of failing that student with a traceback."""

    def from_file(self, file_stream, resources=None, **kw):
        try:
            nb = nbformat.reads(file_stream.read(), as_version=4)
            nbformat.validate(nb)
        except Exception as err:  # noqa: BLE001 - whatever makes it unreadable, the engine's verdict says it
            info = resources["nbgrader"]
            self.log.warning("%s: %s is not a notebook nbgrader can read (%s: %s); recorded as the released "
                             "notebook, every cell scoring zero", info["student"], getattr(file_stream, "name", ""),
                             type(err).__name__, (str(err).splitlines() or [""])[0][:200])
            nb = _read_notebook(assignment_for(info["assignment"]).release)
        return self.from_notebook_node(nb, resources=resources, **kw)


class MatchReleasedCells(NbGraderPreprocessor):
    """Before nbgrader's own checks: the notebook has each graded cell of the released notebook once, with its
    released nbgrader metadata.

    nbgrader refuses a whole notebook for one cell whose metadata it does not accept: another schema version (a cell
    copied from an older notebook), points that are not a number, a grade id it does not know or with other
    characters, a markdown cell marked as a solution only, a task that is code, a locked cell whose flags changed
    its checksum, a copied graded cell; and it fails when a deleted solution cell was followed by a deleted test cell.
    The engine has already graded the submission and reported every such change (``tampered`` where it matters), so
    nbgrader only has to record the verdict: the first cell with a released grade id gets that cell's released
    metadata (nbgrader's ``OverwriteCells`` then restores its type and locked source), every other cell's nbgrader
    metadata (a copy, an unknown or malformed one) is dropped, and a released graded cell that is missing is put back
    (as released) after the graded cell before it.
    """

    def preprocess(self, nb, resources):
        release = _read_notebook(assignment_for(resources["nbgrader"]["assignment"]).release)
        released = cells_by_grade_id(release)
        seen: dict = {}  # grade id -> its cell
        for cell in nb.cells:
            metadata = cell.get("metadata")
            if not isinstance(metadata, dict) or "nbgrader" not in metadata:
                continue
            grade_id = grade_id_of(cell)
            if grade_id in released and grade_id not in seen:
                seen[grade_id] = cell
                metadata["nbgrader"] = copy.deepcopy(released[grade_id]["metadata"]["nbgrader"])
            else:
                del metadata["nbgrader"]
        cells, position = list(nb.cells), 0
        for grade_id, original in released.items():
            if grade_id in seen:
                position = next(i for i, cell in enumerate(cells) if cell is seen[grade_id]) + 1
            else:
                cell = copy.deepcopy(original)
                if nb.get("nbformat_minor", 5) < 5:
                    cell.pop("id", None)  # cell ids came with nbformat 4.5
                cells.insert(position, cell)
                position += 1
        nb.cells = cells
        return nb, resources


def _read_notebook(data: dict):
    """A notebook (a dict as on disk) as nbformat reads it (sources joined, ids normalized)."""
    import json

    return nbformat.reads(json.dumps(data), as_version=4)


class ApplyVerdicts(NbGraderPreprocessor):
    """Stands in for nbgrader's ``Execute``: a failed test cell gets an error output with the failure's message."""

    verdicts: ClassVar[dict[str, Verdict]] = {}  # student -> verdict, handed over by the class grader

    def verdict(self, resources) -> Verdict:
        return self.verdicts[resources["nbgrader"]["student"]]

    def preprocess(self, nb, resources):
        tests = self.verdict(resources).tests
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            cell.execution_count = 1
            test = tests.get(grade_id_of(cell))
            if test is not None:
                message = test.message or "failed"
                cell.outputs = [] if test.passed else [nbformat.v4.new_output(
                    "error", ename="GradingFailure", evalue=message, traceback=message.splitlines())]
        return nb, resources


class GradeWithEngine(ApplyVerdicts):
    """Plain ``nbgrader autograde``: the engine grades the submitted file (sandboxed) and its verdict is applied."""

    timeout = Float(Limits.timeout, help="seconds for one submission").tag(config=True)
    memory_mb = Integer(Limits.memory_mb, help="MB of memory for one graded unit").tag(config=True)
    cell_timeout = Float(Limits.cell_seconds, help="seconds one cell of a student's program may run").tag(config=True)
    _engines: ClassVar[dict] = {}
    _lock = threading.Lock()

    def verdict(self, resources) -> Verdict:
        from nbgrader.coursedir import CourseDirectory

        from autograder.grading.engine import Engine, Settings

        info = resources["nbgrader"]
        course = CourseDirectory(config=self.config)
        submitted = Path(course.format_path(course.submitted_directory, info["student"], info["assignment"]))
        with self._lock:
            engine = self._engines.get(info["assignment"])
            if engine is None:
                hide = private_files(Path(course.root), course.db_url)
                engine = Engine(assignment_for(info["assignment"]),
                                Settings(Limits(timeout=self.timeout, memory_mb=self.memory_mb,
                                              cell_seconds=self.cell_timeout)), hide)
                for warning in engine.warnings:
                    self.log.warning(warning)
                self._engines[info["assignment"]] = engine
                atexit.register(engine.close)
        path = submitted / f"{info['notebook']}.ipynb"
        verdict, _ = engine.grade_file(path)
        self.log.info("%s: %s, %g / %g", info["student"], verdict.status, verdict.score, verdict.max_score)
        return verdict


# ------------------------------------------------------------------------------------------------ grading by hand
RUBRIC_TITLE = "Rubric for instructors (not shown to students)"


def model_answer(cell) -> str:
    """What a hand-graded cell of the solution holds for the grader: the text between its ``BEGIN SOLUTION`` and
    ``END SOLUTION`` lines (the model answer and the rubric), or the whole cell when it has no such region (nbgrader
    then clears it whole for students)."""
    lines = source_of(cell).split("\n")
    if not any("BEGIN SOLUTION" in line for line in lines):
        return "\n".join(lines).strip()
    kept, inside = [], False
    for line in lines:
        if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
            inside = "BEGIN SOLUTION" in line
        elif inside:
            kept.append(line)
    return "\n".join(kept).strip()


def is_rubric(cell) -> bool:
    """A cell :class:`AddRubrics` inserted (``metadata.autograder.rubric``: the grade id of its answer)."""
    meta = cell.get("metadata", {}).get("autograder") if isinstance(cell.get("metadata"), dict) else None
    return isinstance(meta, dict) and "rubric" in meta


class AddRubrics(NbGraderPreprocessor):
    """After ``SaveAutoGrades``: after each answer graded by hand, a markdown cell with the solution's model answer and
    rubric, for whoever grades it in formgrader (which shows this, the autograded notebook). The cell has no nbgrader
    metadata, so nbgrader neither grades nor checks it; it is marked in its metadata, so that ``generate_feedback``
    drops it (:class:`DropRubrics`): students never get it. A cell of the submission marked so is not the
    instructor's and is dropped."""

    def preprocess(self, nb, resources):
        assignment = assignment_for(resources["nbgrader"]["assignment"])
        solution = cells_by_grade_id(assignment.solution)
        cells = []
        for cell in nb.cells:
            if is_rubric(cell):
                continue
            cells.append(cell)
            grade_id = grade_id_of(cell)
            if grade_id in assignment.manual and grade_id in solution:
                rubric = nbformat.v4.new_markdown_cell(
                    f"**{RUBRIC_TITLE}:** `{grade_id}`, {assignment.manual[grade_id]:g} points\n\n"
                    f"{model_answer(solution[grade_id])}", metadata={"autograder": {"rubric": grade_id}})
                if nb.get("nbformat_minor", 5) < 5:
                    rubric.pop("id", None)  # cell ids came with nbformat 4.5
                cells.append(rubric)
        nb.cells = cells
        return nb, resources


class DropRubrics(NbGraderPreprocessor):
    """``generate_feedback``: the rubric cells of the autograded notebook (:class:`AddRubrics`) are not handed out."""

    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells if not is_rubric(cell)]
        return nb, resources


def configure(c, verdicts: type[ApplyVerdicts] = GradeWithEngine) -> None:
    """The course's nbgrader configuration (``c`` is a traitlets Config)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.converters import GenerateAssignment, GenerateFeedback
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
    c.Autograde.exporter_class = ReadAnyNotebook
    c.Autograde.sanitize_preprocessors = [ClearOutput, MatchReleasedCells, DeduplicateIds, OverwriteKernelspec,
                                          OverwriteCells, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [verdicts, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                           SaveAutoGrades, AddRubrics, AssignLatePenalties, CheckCellMetadata]
    c.GenerateFeedback.preprocessors = [DropRubrics, *GenerateFeedback.class_traits()["preprocessors"].default()]


COURSE_CONFIG = '''"""nbgrader's configuration of this class folder (written by python -m autograder autograde).

With it, nbgrader's own commands run here are the course's: formgrader shows each written answer's rubric,
`nbgrader generate_feedback` drops the rubrics (students never get them), `nbgrader autograde` grades with the
course's engine, `nbgrader export --exporter=autograder.commands.export.CanvasExport` exports for an LMS.
"""

from autograder.commands.nbgrader_hooks import configure

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

configure(c)
'''


def write_course_config(folder: Path) -> Path | None:
    """``folder/nbgrader_config.py`` with the course's configuration, unless the folder has one (returned: the file
    written, or None)."""
    path = Path(folder) / "nbgrader_config.py"
    if path.exists():
        return None
    path.write_text(COURSE_CONFIG)
    return path


# ------------------------------------------------------------------------------------------------ class grading
STAGED = UNGRADED  # statuses whose notebook nbgrader records as the staged one (nothing of it was graded)
ERROR_LINE = re.compile(r"^\s*(?:\[ERROR\]\s*)?(?P<error>[A-Za-z_][\w.]*(?:Error|Exception|Exit)\b.*)$")


class RecordError(Exception):
    """nbgrader did not record a verdict in its gradebook; the message says what nbgrader said."""


def nbgrader_reason(done: dict) -> str:
    """What nbgrader's autograde said when it failed, in one line: its last error that is not a summary."""
    lines = f"{done.get('log', '')}\n{done.get('error', '')}".splitlines()
    errors = [m["error"] for m in map(ERROR_LINE.match, lines) if m and "Please see" not in m["error"]]
    logged = [line.split("]", 1)[1].strip() for line in lines if line.startswith("[ERROR]")
              and not line.startswith(("[ERROR] There was an error", "[ERROR] Please see"))]
    return (errors or logged or ["no reason given"])[-1][:400]


class Recorder:
    """Records class-grading verdicts in nbgrader's gradebook through nbgrader's own ``autograde``."""

    def __init__(self, course, assignment: Assignment, stage: Path):
        from nbgrader.api import Gradebook, MissingEntry
        from nbgrader.apps import NbGraderAPI
        from traitlets.config import Config

        self.course, self.assignment, self.stage = course, assignment, Path(stage)
        _ASSIGNMENTS[assignment.id] = assignment
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
                raise RecordError(f"nbgrader generate_assignment failed: {nbgrader_reason(done)}")

    def record(self, result: Verdict, raw: bytes | None) -> list[str]:
        """Put one student's verdict into the gradebook and ``autograded/``; returns notes for the instructor on how
        (none: as usual). The notebook nbgrader records is the submitted one; when nbgrader refuses it, or the file
        is not a notebook, the released notebook with the student's own graded cells and answers (the cells the
        verdict is about). Raises :class:`RecordError` when nbgrader records neither."""
        from autograder.grading.scoring import staged_notebook

        student = result.student
        notes: list[str] = []
        timestamp = self._timestamp(student, notes)
        staged = nbformat.writes(nbformat.from_dict(staged_notebook(self.assignment, result))).encode()
        refused = None
        for data in ([raw] if raw is not None and result.status not in STAGED else []) + [staged]:
            reason = self._autograde(student, data, timestamp, result)
            if reason is None:
                if refused:
                    notes.append(f"nbgrader refused the notebook as submitted ({refused}); the gradebook holds the "
                                 "released notebook with the student's graded cells and answers instead")
                return notes
            refused = refused or reason
        raise RecordError(f"nbgrader did not record it in the gradebook: {reason}")

    def _timestamp(self, student: str, notes: list[str]) -> str | None:
        """The submission's timestamp.txt, when nbgrader can read it (else a note: recorded without a time)."""
        from nbgrader.utils import parse_utc

        path = self.course.submission(student).parent / "timestamp.txt"
        try:
            text = path.read_text().strip() if path.is_file() else ""
            if text:
                parse_utc(text)
            return text or None
        except (OSError, ValueError, OverflowError, UnicodeDecodeError) as err:
            notes.append(f"its timestamp.txt is not a time nbgrader can read ({type(err).__name__}: {err}); "
                         "recorded without a submission time (no late penalty applied)")
            return None

    def _autograde(self, student: str, notebook: bytes, timestamp: str | None, result: Verdict) -> str | None:
        """nbgrader's autograde of one notebook with the verdict; None when it succeeded, else nbgrader's reason."""
        import shutil

        folder = self.stage / "submitted" / student / self.assignment.id
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / self.assignment.notebook).write_bytes(notebook)
        if timestamp:
            (folder / "timestamp.txt").write_text(timestamp)
        ApplyVerdicts.verdicts[student] = result
        try:
            done = self.api.autograde(self.assignment.id, student, force=True, create=True)
        finally:
            ApplyVerdicts.verdicts.pop(student, None)
        return None if done["success"] else nbgrader_reason(done)
