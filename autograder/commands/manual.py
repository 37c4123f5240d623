"""The written answers, graded by hand in nbgrader's formgrader: their points and comments, read from the gradebook.

The engine grades the code; the answers of the cells graded by hand (``Assignment.manual``) are graded in formgrader,
which keeps each one's points and comment in nbgrader's gradebook. Every ``python -m autograder autograde`` run reads
them (:func:`hand_graded`, one query per class) and puts them into its outputs: ``grades.csv`` (per answer, ``manual``,
``total`` = autograded + manual, ``needs_manual_grading``), the class report, the course index, the terminal table and
every feedback page (each answer's points and the grader's comment, then the final grade). Nothing is graded again
for it: after grading by hand, run ``autograde`` again and every output is up to date.

An answer counts once a grader gave it points in formgrader (its manual score), as in nbgrader's own total (the
score ``nbgrader export`` and ``python -m autograder export`` use): nbgrader flags every answer for a manual grade
again whenever a notebook is recorded again (``--force``, a resubmission), and keeps the points given; they still
count. An answer no grader has scored counts once nbgrader says it needs no manual grade: one the student left as
released gets zero from nbgrader itself ("No response."). A missing submission has no answer to grade.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grading.verdict import Status, Verdict


@dataclass(frozen=True)
class Answer:
    """One written answer of one student."""

    points: float | None      # None while it is still to grade by hand
    max_points: float
    comment: str = ""         # the grader's comment (nbgrader's "No response." for an answer left empty)


@dataclass
class ManualGrades:
    """A student's written answers (grade id -> answer, in the notebook's order)."""

    answers: dict[str, Answer] = field(default_factory=dict)

    @property
    def points(self) -> float:
        """The points graded by hand so far."""
        return sum(a.points for a in self.answers.values() if a.points is not None)

    @property
    def max_points(self) -> float:
        return sum(a.max_points for a in self.answers.values())

    @property
    def pending(self) -> list[str]:
        """The answers still to grade by hand."""
        return [g for g, a in self.answers.items() if a.points is None]


@dataclass
class HandGraded:
    """The written answers of a class, for one assignment."""

    cells: dict[str, float]                                        # grade id -> points (the assignment's)
    students: dict[str, ManualGrades] = field(default_factory=dict)  # absent: nothing of them in the gradebook
    error: str = ""                                                # why the gradebook could not be read

    def of(self, result: Verdict) -> ManualGrades:
        """A student's written answers; one not in the gradebook yet has every answer still to grade (none when
        nothing was submitted)."""
        found = self.students.get(result.student or "")
        if found is not None:
            return found
        if result.status == Status.MISSING:
            return ManualGrades()
        return ManualGrades({g: Answer(None, points) for g, points in self.cells.items()})


def read_manual_grades(db_url: str, assignment, students: list[str]) -> dict[str, ManualGrades]:
    """The written answers of ``students`` in the gradebook ``db_url`` (one query for the grades, one for the
    comments, whatever the size of the class); a student whose notebook is not in the gradebook is left out."""
    from nbgrader.api import Assignment as GradebookAssignment
    from nbgrader.api import (
        Comment,
        Grade,
        Gradebook,
        GradeCell,
        Notebook,
        SolutionCell,
        Student,
        SubmittedAssignment,
        SubmittedNotebook,
    )

    from autograder.commands.nbgrader_hooks import COURSE_ID

    cells = dict(assignment.manual)
    if not cells:
        return {}
    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).is_file():
        return {}  # nothing recorded yet (opening it would create it)

    def query(gb, table, cell, *columns):
        """``columns`` of ``table`` (grades or comments) of the hand-graded cells, with student and grade id."""
        return (gb.db.query(Student.id, cell.name, *columns)
                .select_from(table)
                .join(cell, cell.id == table.cell_id)
                .join(SubmittedNotebook, SubmittedNotebook.id == table.notebook_id)
                .join(Notebook, Notebook.id == SubmittedNotebook.notebook_id)
                .join(SubmittedAssignment, SubmittedAssignment.id == SubmittedNotebook.assignment_id)
                .join(GradebookAssignment, GradebookAssignment.id == SubmittedAssignment.assignment_id)
                .join(Student, Student.id == SubmittedAssignment.student_id)
                .filter(GradebookAssignment.name == assignment.id, Notebook.name == Path(assignment.notebook).stem,
                        cell.name.in_(list(cells)))
                .all())

    with warnings.catch_warnings():  # nbgrader's SQLAlchemy warns about its own session use
        warnings.simplefilter("ignore")
        with Gradebook(db_url, COURSE_ID) as gb:
            grades = query(gb, Grade, GradeCell, Grade.manual_score, Grade.auto_score, Grade.extra_credit,
                           Grade.needs_manual_grade)
            comments = {(s, g): manual if manual is not None else auto for s, g, manual, auto in
                        query(gb, Comment, SolutionCell, Comment.manual_comment, Comment.auto_comment)}
    found: dict[str, dict[str, Answer]] = {}
    for student, grade_id, manual, auto, extra, needs in grades:
        # nbgrader's Grade.score; None while no grader gave points and nbgrader still asks for them
        score = manual if manual is not None else (None if needs else auto)
        points = None if score is None else score + (extra or 0.0)
        found.setdefault(student, {})[grade_id] = Answer(points, cells[grade_id], comments.get((student, grade_id))
                                                         or "")
    wanted = set(students)
    return {s: ManualGrades({g: answers.get(g, Answer(None, points)) for g, points in cells.items()})
            for s, answers in found.items() if s in wanted}


def hand_graded(course, results: list[Verdict]) -> HandGraded:
    """The class's written answers from its gradebook, and every feedback page brought up to date with them. A
    gradebook that cannot be read is said on stderr; the reports then show every answer as still to grade and the
    feedback pages stay as they are."""
    from autograder.commands.report import feedback_html

    found = HandGraded(dict(course.assignment.manual))
    try:
        found.students = read_manual_grades(course.db_url, course.assignment, [r.student for r in results])
    except Exception as err:  # noqa: BLE001 - the grades stay in the gradebook; the next run reads them again
        found.error = f"{type(err).__name__}: {str(err).strip() or 'no message'}"
        print(f"cannot read the points graded by hand from the gradebook {course.db_url} ({found.error}); the reports "
              "show every written answer as still to grade", file=sys.stderr)
        return found
    for result in results:
        path = course.feedback(result.student)
        try:
            if path.is_file():
                page = feedback_html(result, found.of(result))
                if path.read_text() != page:
                    path.write_text(page)
        except (OSError, UnicodeDecodeError) as err:
            print(f"cannot update the feedback page {path} with the points graded by hand ({err}); it is "
                  "updated on the next autograde run", file=sys.stderr)
    return found
