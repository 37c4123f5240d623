"""Export to an LMS: every student and assignment of nbgrader's gradebook, automatic + manual points less the late
penalty, 0 (and named) for a missing submission, in the files Canvas and Moodle import; ``nbgrader export`` with the
same plugin writes the same file; bad input is refused with a clear message and loses nothing.

The gradebook is built with nbgrader's API (no grading): two assignments with an autograded and a hand-graded cell
each, three students, one of them without names and without a submission for the second assignment, one with a
comma in the last name and a late penalty."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from autograder.__main__ import main as cli
from autograder.commands import venv_env
from autograder.commands.export import CanvasExport, ExportError, collect, main, points

# assignment -> (notebook, its autograded cell and max score, its hand-graded written answer and max score)
CELLS = {"01_dino": ("dino", ("test_centering", 10), ("answer_collapse", 5)),
         "02_random_teachers": ("random_teachers", ("test_teacher", 20), ("answer_why", 8))}
STUDENTS = {"ada": dict(first_name="Ada", last_name="Lovelace", email="ada@uni.example"),
            "bsmith": dict(first_name="Bob", last_name="Smith, Jr.", email="bob@uni.example"),
            "carol": {}}
# student -> assignment -> (auto score of the code cell, manual score of the written answer or None, late penalty)
GRADED = {
    "ada": {"01_dino": (10, 4, 0), "02_random_teachers": (20, 7.5, 0)},
    "bsmith": {"01_dino": (7, 5, 0), "02_random_teachers": (12, 6, 3)},
    "carol": {"01_dino": (3, None, 0)},  # her written answer is not graded yet; no 02 submission
}
# what each LMS must show: the points after the penalty, by hand from the table above
EXPECTED = {"ada": {"01_dino": "14", "02_random_teachers": "27.5"},
            "bsmith": {"01_dino": "12", "02_random_teachers": "15"},
            "carol": {"01_dino": "3", "02_random_teachers": "0"}}
TOTALS = {"ada": "41.5", "bsmith": "27", "carol": "3"}
MAX = {"01_dino": "15", "02_random_teachers": "28"}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course folder whose gradebook.db holds the grades above."""
    from nbgrader.api import Gradebook

    root = tmp_path_factory.mktemp("course")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", venv_env()["PATH"])  # a new gradebook asks `alembic` for its version (seconds)
        gb = Gradebook(f"sqlite:///{root / 'gradebook.db'}")
    (root / "empty").mkdir()  # an empty gradebook, for the test that refuses one
    shutil.copy(root / "gradebook.db", root / "empty" / "gradebook.db")
    with gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's SQLAlchemy warns about its own session use in add_submission
        for assignment, (notebook, (code, code_max), (answer, answer_max)) in CELLS.items():
            gb.add_assignment(assignment)
            gb.add_notebook(notebook, assignment)
            gb.add_grade_cell(code, notebook, assignment, max_score=code_max, cell_type="code")
            gb.add_grade_cell(answer, notebook, assignment, max_score=answer_max, cell_type="markdown")
        for student, names in STUDENTS.items():
            gb.add_student(student, **names)
        for student, submissions in GRADED.items():
            for assignment, (auto, manual, penalty) in submissions.items():
                gb.add_submission(assignment, student)
                notebook, (code, _), (answer, _) = CELLS[assignment]
                gb.find_grade(code, notebook, assignment, student).auto_score = auto
                grade = gb.find_grade(answer, notebook, assignment, student)
                grade.manual_score, grade.needs_manual_grade = manual, manual is None  # as formgrader leaves it
                gb.find_submission_notebook(notebook, assignment, student).late_submission_penalty = penalty
                gb.db.commit()
        # the premise: nbgrader's submission score holds the manual points and its penalty is apart
        assert gb.find_submission("01_dino", "ada").score == 14
        assert gb.find_submission("02_random_teachers", "bsmith").score == 18
        assert gb.find_submission("02_random_teachers", "bsmith").late_submission_penalty == 3
    return root


def export(course: Path, tmp_path: Path, capsys, *args: str) -> tuple[int, str, str, Path]:
    """``python -m autograder export --course COURSE --to FILE ARGS``, in-process: (status, stdout, stderr, FILE)."""
    out = tmp_path / "export.csv"
    code = cli(["export", "--course", str(course), "--to", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_points_are_plain_decimals():
    assert [points(x) for x in (0, 12.0, 7.5, 0.25, 1234567, 1 / 3, 0.1 + 0.2)] == \
        ["0", "12", "7.5", "0.25", "1234567", "0.3333", "0.3"]


def test_canvas_file_is_read_as_canvas_reads_it(course, tmp_path, capsys):
    code, stdout, stderr, path = export(course, tmp_path, capsys, "--format", "canvas")
    assert code == 0, stderr
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "Student,ID,SIS User ID,SIS Login ID,Section,01_dino,02_random_teachers"
    assert '"Smith, Jr., Bob"' in text  # a name with a comma is quoted, so the columns stay in place
    points_possible, *students = read(path)
    # Canvas's importer: the row whose first cell is "Points Possible" gives each assignment's points
    assert points_possible["Student"] == "Points Possible"
    assert {a: points_possible[a] for a in MAX} == MAX
    assert all(points_possible[c] == "" for c in ("ID", "SIS User ID", "SIS Login ID", "Section"))
    # every student, found by SIS id (Canvas's own user id is unknown to the gradebook, so it stays empty)
    by_sis = {row["SIS User ID"]: row for row in students}
    assert set(by_sis) == set(STUDENTS)
    for sis, row in by_sis.items():
        assert row["SIS Login ID"] == sis and row["ID"] == "" and row["Section"] == ""
        assert {a: row[a] for a in MAX} == EXPECTED[sis], sis  # manual points in, late penalty out, missing 0
    assert by_sis["ada"]["Student"] == "Lovelace, Ada" and by_sis["bsmith"]["Student"] == "Smith, Jr., Bob"
    assert by_sis["carol"]["Student"] == "carol"  # no name in the gradebook: the id
    assert "02_random_teachers: carol" in stdout


def test_canvas_identity_and_columns_can_be_changed(course, tmp_path):
    from nbgrader.api import Gradebook

    out = tmp_path / "canvas.csv"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        CanvasExport(to=str(out), identity="sis_login_id", columns={"01_dino": "Assignment 1 (48213)"}).write(gb)
    rows = read(out)
    assert list(rows[0])[5:] == ["Assignment 1 (48213)", "02_random_teachers"]
    assert {r["SIS Login ID"] for r in rows[1:]} == set(STUDENTS) and {r["SIS User ID"] for r in rows} == {""}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb, pytest.raises(ExportError, match="01_dnio"):
        CanvasExport(to=str(out), columns={"01_dnio": "typo"}).write(gb)


def test_moodle_file_maps_usernames_to_points(course, tmp_path, capsys):
    code, stdout, stderr, path = export(course, tmp_path, capsys, "--format", "moodle")
    assert code == 0, stderr
    rows = read(path)
    assert list(rows[0]) == ["Username", "Email address", "First name", "Last name", *MAX]
    assert len(rows) == len(STUDENTS)  # students only: no points row, no total Moodle would offer as a grade item
    by_user = {row["Username"]: row for row in rows}
    assert {u: {a: r[a] for a in MAX} for u, r in by_user.items()} == EXPECTED
    assert by_user["bsmith"]["Last name"] == "Smith, Jr." and by_user["ada"]["Email address"] == "ada@uni.example"
    assert "Identify user by" in stdout and "carol" in stdout


def test_plain_csv_has_one_row_per_student_with_the_total(course, tmp_path, capsys):
    code, _, stderr, path = export(course, tmp_path, capsys, "--format", "csv")
    assert code == 0, stderr
    rows = read(path)
    assert list(rows[0]) == ["student", "first_name", "last_name", "email", *MAX, "total"]
    assert {r["student"]: (dict((a, r[a]) for a in MAX), r["total"]) for r in rows} == \
        {s: (EXPECTED[s], TOTALS[s]) for s in STUDENTS}


def test_the_command_names_the_missing_submissions_and_selects_assignments(course, tmp_path, capsys):
    out = tmp_path / "one.csv"
    assert main(["--course", str(course), "--format", "csv", "--to", str(out), "--assignment", "02_random_teachers"]) \
        == 0
    stdout = capsys.readouterr().out
    assert f"wrote {out}" in stdout and "3 student(s), 1 assignment(s)" in stdout
    assert "no submission (exported as 0 points):\n  02_random_teachers: carol" in stdout
    assert "answers still to grade by hand" not in stdout  # carol's 02 answer is missing, not ungraded
    assert main(["--course", str(course), "--format", "csv", "--to", str(tmp_path / "all.csv")]) == 0
    assert "still to grade by hand (exported with the points given so far" in (said := capsys.readouterr().out)
    assert said.endswith("  01_dino: carol\n")  # her written answer of 01 is not graded yet
    assert list(read(out)[0]) == ["student", "first_name", "last_name", "email", "02_random_teachers", "total"]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grades = collect(gb, students=["carol", "ada"])
    assert [s.id for s in grades.students] == ["carol", "ada"] and grades.missing == {"02_random_teachers": ["carol"]}


def test_nbgrader_export_with_the_plugin_writes_the_same_file(course, tmp_path, capsys):
    code, _, stderr, ours = export(course, tmp_path, capsys, "--format", "canvas")
    assert code == 0, stderr
    nbgrader = Path(sys.executable).parent / "nbgrader"
    done = subprocess.run([str(nbgrader), "export", "--exporter=autograder.commands.export.CanvasExport",
                           "--to", "canvas.csv", f"--CourseDirectory.root={course}",
                           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"],
                          cwd=course, capture_output=True, text=True, env=venv_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert (course / "canvas.csv").read_bytes() == ours.read_bytes()
    assert "no submission from 1 student(s), exported as 0: carol" in done.stderr  # nbgrader's log names her

    # a bad selection through nbgrader: its error, status 1, no traceback, the earlier file kept
    before = (course / "canvas.csv").read_bytes()
    done = subprocess.run([str(nbgrader), "export", "--exporter=autograder.commands.export.CanvasExport",
                           "--to", "canvas.csv", "--assignment=['03_nope']", f"--CourseDirectory.root={course}",
                           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"],
                          cwd=course, capture_output=True, text=True, env=venv_env(), timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no assignment '03_nope' in the gradebook, which has 01_dino, 02_random_teachers" in done.stderr
    assert (course / "canvas.csv").read_bytes() == before


def test_a_missing_gradebook_is_refused_and_nothing_is_created(tmp_path, capsys):
    assert main(["--course", str(tmp_path), "--to", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert f"no gradebook at {tmp_path / 'gradebook.db'}" in err and "--course" in err
    assert sorted(tmp_path.iterdir()) == []  # no empty gradebook.db, no file


def test_bad_input_is_refused_with_what_to_do_and_loses_nothing(course, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli(["export", "--format", "blackboard"])
    assert stop.value.code == 2 and "invalid choice: 'blackboard'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli(["export", "--format", "moodle", "--canvas-identity", "sis_user_id"])
    assert stop.value.code == 2 and "--canvas-identity is for --format canvas" in capsys.readouterr().err

    out = tmp_path / "grades.csv"
    out.write_text("the previous export\n")
    assert main(["--course", str(course), "--to", str(out), "--assignment", "03_nope"]) == 2
    assert "no assignment '03_nope' in the gradebook, which has 01_dino, 02_random_teachers" in capsys.readouterr().err
    assert main(["--course", str(course), "--to", str(out), "--student", "zed"]) == 2
    assert "no student 'zed' in the gradebook" in capsys.readouterr().err
    assert main(["--course", str(course), "--to", str(tmp_path / "no" / "such" / "dir.csv")]) == 2
    assert "does not exist; create it or pass another --to" in capsys.readouterr().err
    assert out.read_text() == "the previous export\n" and sorted(p.name for p in tmp_path.iterdir()) == ["grades.csv"]


def test_an_empty_gradebook_is_refused(course, tmp_path, capsys):
    assert main(["--course", str(course / "empty"), "--to", str(tmp_path / "x.csv")]) == 2
    assert "the gradebook has no assignment" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
