"""The gradebook's totals as a file an LMS imports: ``python -m autograder export [--format canvas|moodle|csv]``.

The grades come from nbgrader's gradebook (``<course>/gradebook.db``), where ``python -m autograder autograde``
records the automatic points and ``nbgrader formgrader`` the points of the written answers graded by hand. A
student's score for an assignment is nbgrader's ``submission.score`` (automatic + manual points, with extra credit)
minus its late-submission penalty, never below 0. Every student of the gradebook gets a row and every assignment a
column; a student without a submission for an assignment gets 0, and the export names them (a warning, and the
command's output), so nobody is left out or silently failed.

Three exporters, each also an nbgrader export plugin, so nbgrader's own command writes the same file::

    nbgrader export --exporter=autograder.commands.export.CanvasExport --to canvas_grades.csv
    nbgrader export --exporter=autograder.commands.export.MoodleExport --to moodle_grades.csv
    nbgrader export --exporter=autograder.commands.export.PlainExport --to grades_export.csv

(``--assignment`` and ``--student`` select, as for nbgrader's CSV exporter.) :class:`CanvasExport` is Canvas's
gradebook import, :class:`MoodleExport` Moodle's CSV grade import, :class:`PlainExport` one plain row per student
with the total. All three are UTF-8 CSV files written with the ``csv`` module (a name with a comma is quoted), the
points as plain decimals; a file is replaced only once its new content is complete.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.plugins import ExportPlugin
from traitlets import Dict, Enum, Unicode

from autograder.commands import venv_env


class ExportError(Exception):
    """Input an export cannot use; the message says what was expected, what was found and what to do."""


def points(value: float) -> str:
    """A number of points as a plain decimal, as every LMS reads it: 12, 7.5, 0.25 (never 1e+03, never 7.500)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


@dataclass
class Student:
    id: str
    first_name: str
    last_name: str
    email: str
    scores: dict[str, float] = field(default_factory=dict)  # assignment -> points after the late penalty

    @property
    def total(self) -> float:
        return sum(self.scores.values())


@dataclass
class Grades:
    """What an export writes: the assignments (name -> max score, in the gradebook's order) and one row per student."""

    assignments: dict[str, float]
    students: list[Student]
    missing: dict[str, list[str]]  # assignment -> the students without a submission (exported as 0)
    pending: dict[str, list[str]] = field(default_factory=dict)  # assignment -> students with a cell still unscored


def collect(gradebook, assignments: list[str] | None = None, students: list[str] | None = None) -> Grades:
    """Every student's score per assignment from nbgrader's ``gradebook`` (those named, or all of them)."""
    from nbgrader.api import MissingEntry

    found = gradebook.assignments  # ordered by due date, then name
    names = [a.name for a in found]
    if not names:
        raise ExportError("the gradebook has no assignment: expected the gradebook of a graded class (`python -m "
                          "autograder autograde ASSIGNMENT` records each submission in it); check which gradebook "
                          "you exported (--course DIR, or --db-url)")
    unknown = [a for a in assignments or [] if a not in names]
    if unknown:
        raise ExportError(f"no assignment {', '.join(map(repr, unknown))} in the gradebook, which has "
                          f"{', '.join(names)}: pass one of these (or none, for all)")
    people = sorted(gradebook.students, key=lambda s: (s.last_name or "", s.first_name or "", s.id))
    if not people:
        raise ExportError("the gradebook has no student: expected the gradebook of a graded class; check which "
                          "gradebook you exported (--course DIR, or --db-url)")
    ids = [s.id for s in people]
    unknown = [s for s in students or [] if s not in ids]
    if unknown:
        raise ExportError(f"no student {', '.join(map(repr, unknown))} in the gradebook ({len(ids)} students, e.g. "
                          f"{', '.join(ids[:5])}): pass the ids nbgrader knows (or none, for all)")
    if students:
        people = [s for s in people if s.id in students]
    chosen = [a for a in found if not assignments or a.name in assignments]
    grades = Grades({a.name: float(a.max_score or 0) for a in chosen},
                    [Student(s.id, s.first_name or "", s.last_name or "", s.email or "") for s in people], {})
    for assignment in chosen:
        for student in grades.students:
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                student.scores[assignment.name] = 0.0
                grades.missing.setdefault(assignment.name, []).append(student.id)
                continue
            penalty = submission.late_submission_penalty or 0.0
            student.scores[assignment.name] = max(0.0, float(submission.score or 0.0) - penalty)
            if any(g.manual_score is None and g.auto_score is None for nb in submission.notebooks for g in nb.grades):
                grades.pending.setdefault(assignment.name, []).append(student.id)
    return grades


@dataclass
class Written:
    """What an export wrote: the file and the grades in it."""

    path: Path
    grades: Grades


class GradesExport(ExportPlugin):
    """The part the three exporters share: collect the grades, name the students without a submission, write the
    rows of :meth:`rows` to ``to`` (default: :attr:`default_to` in the current folder) atomically."""

    default_to = "grades_export.csv"
    lms = "a spreadsheet"

    def rows(self, grades: Grades) -> list[list[str]]:
        raise NotImplementedError

    def write(self, gradebook) -> Written:
        """Write the file; :class:`ExportError` (nothing written, any earlier file kept) for input it cannot use."""
        grades = collect(gradebook, [str(a) for a in self.assignment], [str(s) for s in self.student])
        rows = self.rows(grades)
        path = write_rows(Path(self.to or self.default_to), rows)
        self.log.info("Exported %d students and %d assignments to %s (%s)", len(grades.students),
                      len(grades.assignments), path, self.lms)
        for name, who in grades.missing.items():
            self.log.warning("%s: no submission from %d student(s), exported as 0: %s", name, len(who), ", ".join(who))
        for name, who in grades.pending.items():
            self.log.warning("%s: %d student(s) with answers still to grade by hand, exported with the points given so "
                             "far: %s", name, len(who), ", ".join(who))
        return Written(path, grades)

    def export(self, gradebook) -> None:
        """nbgrader's entry point (``nbgrader export --exporter=...``): as nbgrader's own commands do, a problem is
        logged as an error (what was expected, what was found, what to do) and exits with status 1."""
        try:
            self.write(gradebook)
        except ExportError as err:
            self.log.error("cannot export the grades: %s", err)
            sys.exit(1)


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    """``rows`` as a UTF-8 CSV file at ``path``, replaced only once complete (an error leaves any earlier file)."""
    folder = path.parent
    if path.is_dir():
        raise ExportError(f"{path} is a folder: expected the file to write; pass a file name (--to FILE)")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: expected an existing folder, but {folder} does not exist; create it "
                          "or pass another --to")
    partial = folder / f".{path.name}.{os.getpid()}.tmp"  # (a plain open keeps the umask's permissions)
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows(rows)
        partial.replace(path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {err.strerror or err}; check the folder's permissions and free "
                          "space, or pass another --to") from err
    return path


class CanvasExport(GradesExport):
    """Canvas's gradebook import (Grades > Import): one column per assignment, a ``Points Possible`` row, one row per
    student, read as Canvas's importer reads it.

    Format: header ``Student,ID,SIS User ID,SIS Login ID,Section,<assignment>...``; a row whose first cell is
    ``Points Possible`` (the assignments' max scores); then the students. Canvas finds a row's student by ``ID``
    (its internal user id, which the gradebook does not know, so it stays empty), else by ``SIS User ID``, else by
    ``SIS Login ID``, else by the name (``Last, First`` is Canvas's sortable name); it finds a column's assignment by
    ``Title (canvas id)`` or the exact title, and creates a new assignment (with the Points Possible) for a column it
    does not know. Sources: the instructor guide "How do I import grades in the Gradebook?"
    (https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807) and
    Canvas's importer, ``app/models/gradebook_importer.rb`` (https://github.com/instructure/canvas-lms).

    Assumption: nbgrader's student ids are the university's logins, which Canvas holds as SIS ids, so the id is
    written in both SIS columns (``identity = "both"``). Where it is only one of them, say which
    (``--CanvasExport.identity=sis_login_id`` or ``sis_user_id``; the other column stays empty, so Canvas never
    matches an id against the wrong one). ``--CanvasExport.columns`` renames columns to import into existing Canvas
    assignments, e.g. ``--CanvasExport.columns ASSIGNMENT="Assignment 1 (48213)"`` (an assignment id, then the
    Canvas column).
    """

    default_to = "canvas_grades.csv"
    lms = "Canvas gradebook import"

    identity = Enum(["both", "sis_user_id", "sis_login_id"], default_value="both",
                    help="which of Canvas's SIS columns hold nbgrader's student id (the other one stays empty)"
                    ).tag(config=True)
    columns = Dict(key_trait=Unicode(), value_trait=Unicode(),
                   help="the Canvas column of an nbgrader assignment (default: the assignment's name), e.g. "
                        "'Assignment 1 (48213)' to import into the existing Canvas assignment 48213").tag(config=True)

    def rows(self, grades: Grades) -> list[list[str]]:
        unknown = sorted(set(self.columns) - set(grades.assignments))
        if unknown:
            raise ExportError(f"CanvasExport.columns names {', '.join(map(repr, unknown))}, which the export does not "
                              f"have (it has {', '.join(grades.assignments)}): use those names as keys")
        names = list(grades.assignments)
        rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *(self.columns.get(a, a) for a in names)],
                ["Points Possible", "", "", "", "", *(points(grades.assignments[a]) for a in names)]]
        for s in grades.students:
            name = ", ".join(part for part in (s.last_name, s.first_name) if part) or s.id
            rows.append([name, "", s.id if self.identity in ("both", "sis_user_id") else "",
                         s.id if self.identity in ("both", "sis_login_id") else "", "",
                         *(points(s.scores[a]) for a in names)])
        return rows


class MoodleExport(GradesExport):
    """Moodle's CSV grade import (Grades > Import > CSV file): one row per student, one column per assignment.

    Header ``Username,Email address,First name,Last name,<assignment>...``. On the import's preview page the teacher
    chooses *Identify user by*: map from ``Username`` to ``username`` (nbgrader's student ids are the Moodle
    usernames; if they are not, map ``Email address`` to ``useremail`` instead), then maps each assignment's column to
    its grade item (or a new one) and leaves the name columns ignored. Moodle stops the whole import at a row whose
    user it cannot find, so the gradebook's students must all be enrolled (or leave one out with ``--student``).
    Sources: https://docs.moodle.org/en/Grade_import and Moodle's importer,
    ``grade/import/csv/classes/load_data.php`` (https://github.com/moodle/moodle).
    """

    default_to = "moodle_grades.csv"
    lms = "Moodle CSV grade import"

    def rows(self, grades: Grades) -> list[list[str]]:
        names = list(grades.assignments)
        return [["Username", "Email address", "First name", "Last name", *names],
                *([s.id, s.email, s.first_name, s.last_name, *(points(s.scores[a]) for a in names)]
                  for s in grades.students)]


class PlainExport(GradesExport):
    """One plain row per student: ``student,first_name,last_name,email,<assignment>...,total`` (no other rows)."""

    default_to = "grades_export.csv"
    lms = "plain CSV"

    def rows(self, grades: Grades) -> list[list[str]]:
        names = list(grades.assignments)
        return [["student", "first_name", "last_name", "email", *names, "total"],
                *([s.id, s.first_name, s.last_name, s.email, *(points(s.scores[a]) for a in names), points(s.total)]
                  for s in grades.students)]


FORMATS = {"canvas": CanvasExport, "moodle": MoodleExport, "csv": PlainExport}
NEXT_STEP = {
    "canvas": "in Canvas: Grades > Import, choose this file, check the preview, Upload",
    "moodle": "in Moodle: Grades > Import > CSV file; Identify user by: map from Username to username; map each "
              "assignment's column to its grade item",
    "csv": "",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=FORMATS, default="canvas",
                        help="canvas (gradebook import), moodle (CSV grade import) or csv (plain rows with a total); "
                             "default: canvas")
    parser.add_argument("--to", type=Path, help="the file to write (default: canvas_grades.csv, moodle_grades.csv or "
                                                "grades_export.csv in the current folder)")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="the nbgrader course directory (default: .)")
    parser.add_argument("--db-url", help="the gradebook (default: sqlite:///COURSE/gradebook.db)")
    parser.add_argument("--assignment", nargs="+", action="extend", default=[], metavar="ID",
                        help="export only these assignments (default: every assignment of the gradebook)")
    parser.add_argument("--student", nargs="+", action="extend", default=[], metavar="ID",
                        help="export only these students (default: every student of the gradebook)")
    parser.add_argument("--canvas-identity", choices=["both", "sis_user_id", "sis_login_id"],
                        help="with --format canvas: which of Canvas's SIS columns hold nbgrader's student id "
                             "(default: both)")
    args = parser.parse_args(argv)
    if args.canvas_identity and args.format != "canvas":
        parser.error(f"--canvas-identity is for --format canvas, not {args.format}: leave it out or export to Canvas")

    root = args.course.resolve()
    db_url = args.db_url or f"sqlite:///{root / 'gradebook.db'}"
    sqlite_file = Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None
    if sqlite_file and not sqlite_file.is_file():
        print(f"error: no gradebook at {sqlite_file}: expected nbgrader's gradebook of a graded class (`python -m "
              "autograder autograde ASSIGNMENT --course DIR` writes DIR/gradebook.db); pass the course folder with "
              "--course or the database with --db-url", file=sys.stderr)
        return 2
    import logging

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SQLAlchemyError

    os.environ["PATH"] = venv_env()["PATH"]  # nbgrader runs `alembic` for a gradebook without tables
    quiet = logging.getLogger("autograder.export")  # this command prints its own summary
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    options = {"identity": args.canvas_identity} if args.canvas_identity else {}
    exporter = FORMATS[args.format](to=str(args.to or ""), assignment=args.assignment, student=args.student,
                                    log=quiet, **options)
    try:
        with warnings.catch_warnings():  # nbgrader's SQLAlchemy warns about its own session use
            warnings.simplefilter("ignore")
            with Gradebook(db_url) as gradebook:
                written = exporter.write(gradebook)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SQLAlchemyError as err:
        print(f"error: cannot read the gradebook {db_url}: {str(err).splitlines()[0]}; expected an nbgrader gradebook "
              "(pass the right one with --course or --db-url)", file=sys.stderr)
        return 2

    grades = written.grades
    print(f"wrote {written.path} ({exporter.lms}): {len(grades.students)} student(s), {len(grades.assignments)} "
          f"assignment(s) ({', '.join(grades.assignments)})")
    if grades.missing:
        print("no submission (exported as 0 points):")
        for name, who in grades.missing.items():
            print(f"  {name}: {', '.join(who)}")
    if grades.pending:
        print("answers still to grade by hand (exported with the points given so far; grade them in formgrader and "
              "export again):")
        for name, who in grades.pending.items():
            print(f"  {name}: {', '.join(who)}")
    if NEXT_STEP[args.format]:
        print(f"next: {NEXT_STEP[args.format]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
