"""Manual grading completes the grade: the written answers are graded by hand in nbgrader's formgrader (which shows
the rubric after each answer, never handed to students), and every output of ``python -m autograder autograde`` reads
their points and comments from the gradebook, without grading any submission again."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from autograder.assignment.course import cells_by_grade_id, grade_id_of, source_of
from autograder.commands import venv_env
from autograder.commands.manual import Answer, HandGraded, ManualGrades, read_manual_grades
from autograder.commands.nbgrader_hooks import (
    COURSE_ID,
    RUBRIC_TITLE,
    AddRubrics,
    DropRubrics,
    _read_notebook,
    is_rubric,
    model_answer,
)
from autograder.commands.report import feedback_html, print_table, report_html, write_course_index, write_csv
from autograder.grading.verdict import Status, TestResult, Verdict

COMMENT = '<script>alert("x")</script> & a clear answer'  # a grader's comment, with what HTML must escape


def _grades_csv(path: Path) -> dict[str, dict]:
    with path.open(newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


# ---------------------------------------------------------------------------------------------------------------------
def test_a_rubric_follows_each_written_answer_and_never_reaches_the_feedback(dino):
    nb = _read_notebook(dino.release)
    nb.cells.append(nbformat.v4.new_markdown_cell("my own rubric", metadata={"autograder": {"rubric": "x"}}))
    graded, _ = AddRubrics().preprocess(nb, {"nbgrader": {"assignment": dino.id}})
    solution = cells_by_grade_id(dino.solution)
    rubrics = [i for i, cell in enumerate(graded.cells) if is_rubric(cell)]
    assert [grade_id_of(graded.cells[i - 1]) for i in rubrics] == list(dino.manual)  # each right after its answer
    for i in rubrics:
        cell, grade_id = graded.cells[i], grade_id_of(graded.cells[i - 1])
        assert cell.cell_type == "markdown" and "nbgrader" not in cell.metadata and RUBRIC_TITLE in cell.source
        assert model_answer(solution[grade_id]) in cell.source and "**Rubric (" in cell.source
        assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
    assert "my own rubric" not in json.dumps(graded)  # a submission's cell marked as a rubric is not the instructor's
    handed_out, _ = DropRubrics().preprocess(graded, {})
    assert not any(is_rubric(c) for c in handed_out.cells) and "Model answer" not in json.dumps(handed_out)


def test_model_answer_is_the_solution_region_or_the_whole_cell():
    cell = {"source": "Question?\n\n### BEGIN SOLUTION\n**Model answer.** yes\n### END SOLUTION\nafter"}
    assert model_answer(cell) == "**Model answer.** yes"
    assert model_answer({"source": ["All of it\n", "is the answer"]}) == "All of it\nis the answer"


def _gradebook(db_url: str, dino, students: list[str]):
    """A gradebook with the assignment's written answers and a submission of each student (as nbgrader's
    generate_assignment and autograde make them), and another assignment with an answer of the same name."""
    from nbgrader.api import Gradebook

    stem = Path(dino.notebook).stem
    with Gradebook(db_url, COURSE_ID) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's SQLAlchemy warns about its own session use
        for aid in (dino.id, "other"):
            gb.add_assignment(aid)
            gb.add_notebook(stem, aid)
            for grade_id, points in dino.manual.items():
                gb.add_grade_cell(grade_id, stem, aid, max_score=points, cell_type="markdown")
                gb.add_solution_cell(grade_id, stem, aid)
        for student in students:
            gb.add_student(student)
            for aid in (dino.id, "other"):
                gb.add_submission(aid, student)


def _grade_by_hand(db_url: str, dino, student: str, grade_id: str, points: float | None, comment: str | None = None,
                   assignment: str | None = None) -> None:
    """What formgrader does when a grader gives points and a comment (nbgrader's formgrader apihandlers:
    GradeHandler.put and CommentHandler.put)."""
    from nbgrader.api import Gradebook

    stem, aid = Path(dino.notebook).stem, assignment or dino.id
    with Gradebook(db_url, COURSE_ID) as gb:
        grade = gb.find_grade_by_id(gb.find_grade(grade_id, stem, aid, student).id)
        grade.manual_score, grade.extra_credit = points, None
        grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
        gb.db.commit()
        if comment is not None:
            found = gb.find_comment_by_id(gb.find_comment(grade_id, stem, aid, student).id)
            found.manual_comment = comment
            gb.db.commit()


def test_points_and_comments_are_read_from_the_gradebook(dino, tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", venv_env()["PATH"])  # a new gradebook asks `alembic` for its version

    db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    assert read_manual_grades(db_url, dino, ["ann"]) == {}  # no gradebook yet: nothing, and none made
    assert not (tmp_path / "gradebook.db").exists()
    first, second, third = dino.manual
    _gradebook(db_url, dino, ["ann", "bob", "cy", "dan"])
    _grade_by_hand(db_url, dino, "ann", first, 1.5, COMMENT)
    _grade_by_hand(db_url, dino, "ann", second, 2)
    _grade_by_hand(db_url, dino, "ann", third, 0, "no answer to the second question")
    _grade_by_hand(db_url, dino, "bob", first, 1)
    _grade_by_hand(db_url, dino, "cy", first, 2, assignment="other")  # another assignment's answer of that name
    stem = Path(dino.notebook).stem
    with Gradebook(db_url, COURSE_ID) as gb:
        grade = gb.find_grade(second, stem, dino.id, "bob")  # bob's second answer: extra credit, given by a grader
        grade.manual_score, grade.extra_credit, grade.needs_manual_grade = 1, 0.5, False
        grade = gb.find_grade(third, stem, dino.id, "bob")  # left as released: nbgrader's autograde gives it 0
        grade.auto_score, grade.needs_manual_grade = 0, False
        gb.find_comment(third, stem, dino.id, "bob").auto_comment = "No response."
        grade = gb.find_grade(first, stem, dino.id, "dan")  # graded, then recorded again (--force, a resubmission):
        grade.manual_score, grade.needs_manual_grade = 2, True  # nbgrader flags it again, its points still count
        gb.db.commit()
    found = read_manual_grades(db_url, dino, ["ann", "bob", "cy", "dan", "eve"])
    assert set(found) == {"ann", "bob", "cy", "dan"}  # eve has nothing in the gradebook
    ann, bob = found["ann"], found["bob"]
    assert ann.answers == {first: Answer(1.5, dino.manual[first], COMMENT), second: Answer(2, dino.manual[second]),
                           third: Answer(0, dino.manual[third], "no answer to the second question")}
    assert (ann.points, ann.max_points, ann.pending) == (3.5, sum(dino.manual.values()), [])
    assert bob.answers == {first: Answer(1, dino.manual[first]), second: Answer(1.5, dino.manual[second]),
                           third: Answer(0, dino.manual[third], "No response.")}
    assert found["cy"].pending == list(dino.manual) and found["cy"].points == 0
    assert found["dan"].pending == [second, third] and found["dan"].points == 2
    assert read_manual_grades(db_url, dino, ["ann"]).keys() == {"ann"}


def test_a_gradebook_that_cannot_be_read_is_said_and_changes_no_feedback_page(dino, tmp_path, capsys):
    from autograder.commands.manual import hand_graded

    (tmp_path / "gradebook.db").write_bytes(b"not a database" * 100)
    page = tmp_path / "feedback.html"
    page.write_text("the page as it was")
    course = SimpleNamespace(assignment=dino, db_url=f"sqlite:///{tmp_path / 'gradebook.db'}", feedback=lambda _: page)
    results = [_verdict("ann", 16)]
    found = hand_graded(course, results)
    assert "cannot read the points graded by hand from the gradebook" in capsys.readouterr().err and found.error
    assert page.read_text() == "the page as it was"
    assert found.of(results[0]).pending == list(dino.manual)  # shown as still to grade, never as 0 points given
    assert "The gradebook could not be read" in report_html(results, dino, {}, found)


def _verdict(student: str, score: float, status: str = "ok") -> Verdict:
    return Verdict(assignment="01_dino", student=student, status=Status(status), score=score, max_score=16,
                   manual_max=6, tests={"t": TestResult(unit="u", points=score, max_points=16, passed=score == 16)})


def test_every_output_shows_the_written_answers(dino, tmp_path, capsys):
    first, second, third = dino.manual
    graded = ManualGrades({first: Answer(2, 2, COMMENT), second: Answer(1.5, 2), third: Answer(0, 2, "No response.")})
    half = ManualGrades({first: Answer(1, 2), second: Answer(None, 2), third: Answer(None, 2)})
    manual = HandGraded(dict(dino.manual), {"ann": graded, "bob": half})
    results = [_verdict("ann", 16), _verdict("bob", 9), _verdict("cy", 12),
               Verdict(student="dan", status=Status.MISSING)]
    reports = tmp_path / "reports"
    (reports / dino.id).mkdir(parents=True)
    rows = _grades_csv(write_csv(reports / dino.id / "grades.csv", results, ["u"], manual))
    assert list(rows["ann"])[:10] == ["student", "u", first, second, third, "autograded", "manual", "total",
                                      "max_total", "needs_manual_grading"]
    assert [rows["ann"][k] for k in (first, second, third, "autograded", "manual", "total", "max_total",
                                     "needs_manual_grading")] == ["2", "1.5", "0", "16", "3.5", "19.5", "22", "no"]
    assert [rows["bob"][k] for k in (first, second, "manual", "total", "needs_manual_grading")] == [
        "1", "", "1", "10", "yes"]
    # cy is not in the gradebook yet: every answer still to grade; dan submitted nothing: nothing to grade
    assert [rows["cy"][k] for k in (first, "total", "needs_manual_grading")] == ["", "12", "yes"]
    assert [rows["dan"][k] for k in (first, "total", "needs_manual_grading")] == ["", "0", "no"]

    page = feedback_html(results[0], manual.of(results[0]))
    assert "automatic 16 + written 3.5 = 19.5 / 22" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; a clear answer" in page and "<script>" not in page
    assert "not graded by hand yet" not in page and "No response." in page
    page = feedback_html(results[1], manual.of(results[1]))
    assert "not graded by hand yet" in page and "written 1 points so far" not in page and "1 points so far" in page
    assert "= " not in page.split("Status:")[0]  # no final grade while an answer is still to grade
    assert "are not graded by hand yet" in feedback_html(results[2], manual.of(results[2]))

    report = report_html(results, dino, {}, manual)
    assert "Mean total with the points graded by hand so far: 13.83 / 22" in report  # (19.5 + 10 + 12) / 3
    assert "5 written answer(s) of 2 student(s) still to grade by hand" in report
    assert f"<tr><td><code>{first}</code></td><td>2</td><td>2</td><td>1.50</td><td>1</td></tr>" in report
    assert f"<tr><td><code>{second}</code></td><td>2</td><td>1</td><td>1.50</td><td>2</td></tr>" in report

    index = write_course_index(reports).read_text()
    assert "13.83 / 22" in index and "<td>2</td></tr>" in index
    course_rows = _grades_csv(reports / "grades.csv")
    assert course_rows["ann"][f"{dino.id} total"] == "19.5"
    assert [course_rows[s][f"{dino.id} needs manual grading"] for s in "ann bob cy dan".split()] == [
        "no", "yes", "yes", "no"]

    print_table(results, SimpleNamespace(units={"u": "Part"}, manual=dino.manual, max_score=16), manual)
    table = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert table["student"] == ["u", "auto", "written", "total", "status"]
    assert table["ann"] == ["16/16", "16/16", "3.5/6", "19.5/22", "ok"] and table["bob"][2:4] == ["1/6*", "10/22"]
    assert table["*"][:3] == ["written", "answers", "still"]


# ---------------------------------------------------------------------------------------------------------------------
def _autograde(dino, course: Path, *extra: str) -> subprocess.CompletedProcess:
    from corpus import LIMITS, run

    return run([sys.executable, "-m", "autograder", "autograde", dino.id, "--course", str(course), "--root",
                str(dino.root), "--workers", "2", *LIMITS, *extra])


@pytest.mark.slow
def test_grading_by_hand_completes_the_grade_without_grading_again(dino, tmp_path):
    from corpus import run
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers

    from autograder.proof.submissions import correct, examples

    course, stem = tmp_path / "course", Path(dino.notebook).stem
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    own = {"ann": correct(dino), "bob": json.loads(json.dumps(examples(dino).EXAMPLES["partial"].build(dino)))}
    for student, nb in own.items():
        for cell in nb["cells"]:
            if grade_id_of(cell) in dino.manual:
                cell["source"] = f"{student}'s own answer to {grade_id_of(cell)}."
        path = course / "submitted" / student / dino.id / dino.notebook
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(nb))
    first, second, third = dino.manual
    auto = {"ann": 16.0, "bob": 9.0}

    _autograde(dino, course, "--quiet")
    rows = _grades_csv(course / "reports" / dino.id / "grades.csv")
    assert {s: (r["autograded"], r["total"], r["max_total"], r["needs_manual_grading"], r[first])
            for s, r in rows.items()} == {s: (f"{a:g}", f"{a:g}", "22", "yes", "") for s, a in auto.items()}
    # formgrader shows the autograded notebook: the rubric after each answer, and it renders as formgrader does
    graded = nbformat.read(course / "autograded" / "ann" / dino.id / dino.notebook, as_version=4)
    answers = [i for i, cell in enumerate(graded.cells) if grade_id_of(cell) in dino.manual]
    solution = cells_by_grade_id(dino.solution)
    for i in answers:
        assert is_rubric(graded.cells[i + 1]) and "nbgrader" not in graded.cells[i + 1].metadata
        assert model_answer(solution[grade_id_of(graded.cells[i])]) in source_of(graded.cells[i + 1])
    assert sum(map(is_rubric, graded.cells)) == len(dino.manual)
    exporter = HTMLExporter(template_name="formgrade", extra_template_basedirs=[handlers.template_path])
    page, _ = exporter.from_notebook_node(graded, resources={
        "assignment_id": dino.id, "notebook_id": stem, "submission_id": "x", "index": 0, "total": 2, "base_url": "",
        "student": "ann", "last_name": None, "first_name": None, "notebook_path": "autograded/ann"})
    assert RUBRIC_TITLE in page and "ann's own answer" in page and "**Rubric (" not in page and "Rubric (2" in page
    # nbgrader's own feedback is made from the autograded notebook: without the rubric, with the configuration
    # autograde wrote into the class folder (run there, as an instructor would)
    assert "configure(c)" in (course / "nbgrader_config.py").read_text()
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    run([nbgrader, "generate_feedback", dino.id, f"--CourseDirectory.root={course}",
         f"--CourseDirectory.db_url={db_url}", "--CourseDirectory.feedback_directory=nbgrader_feedback"], cwd=course)
    handed_out = (course / "nbgrader_feedback" / "ann" / dino.id / f"{stem}.html").read_text()
    assert "ann&#39;s own answer" in handed_out or "ann's own answer" in handed_out
    assert RUBRIC_TITLE not in handed_out and "Model answer" not in handed_out and "Rubric (2" not in handed_out

    # ann's answers graded by hand in formgrader; bob's not yet
    _grade_by_hand(db_url, dino, "ann", first, 2, COMMENT)
    _grade_by_hand(db_url, dino, "ann", second, 1.5)
    _grade_by_hand(db_url, dino, "ann", third, 1, "say why the labels are not uniform")
    results = {s: (course / "autograded" / s / dino.id / f"{stem}-autograde.json") for s in auto}
    before = {s: p.stat().st_mtime_ns for s, p in results.items()}
    done = _autograde(dino, course)
    assert "2 students, 0 to grade, 2 already graded" in done.stdout
    assert {s: p.stat().st_mtime_ns for s, p in results.items()} == before  # nothing graded or recorded again
    rows = _grades_csv(course / "reports" / dino.id / "grades.csv")
    assert [rows["ann"][k] for k in (first, second, third, "autograded", "manual", "total", "max_total",
                                     "needs_manual_grading")] == ["2", "1.5", "1", "16", "4.5", "20.5", "22", "no"]
    assert [rows["bob"][k] for k in (first, "manual", "total", "needs_manual_grading")] == ["", "0", "9", "yes"]
    ann = (course / "feedback" / "ann" / dino.id / f"{stem}.html").read_text()
    assert "automatic 16 + written 4.5 = 20.5 / 22" in ann and "say why the labels are not uniform" in ann
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in ann and "<script>" not in ann
    bob = (course / "feedback" / "bob" / dino.id / f"{stem}.html").read_text()
    assert "not graded by hand yet" in bob and "Grade: automatic" not in bob
    report = (course / "reports" / dino.id / "report.html").read_text()
    assert "Mean total with the points graded by hand so far: 14.75 / 22" in report  # (20.5 + 9) / 2
    assert "3 written answer(s) of 1 student(s) still to grade by hand" in report
    assert f"<tr><td><code>{second}</code></td><td>2</td><td>1</td><td>1.50</td><td>1</td></tr>" in report
    index = _grades_csv(course / "reports" / "grades.csv")
    assert index["ann"][f"{dino.id} total"] == "20.5" and index["bob"][f"{dino.id} needs manual grading"] == "yes"
    assert "14.75 / 22" in (course / "reports" / "index.html").read_text()
    assert "4.5/6" in done.stdout and "20.5/22" in done.stdout and "0/6*" in done.stdout
    # recorded again (--force): nbgrader flags ann's answers for a look again, and the points given still count
    assert "1 to grade" in _autograde(dino, course, "--force", "--student", "ann").stdout
    rows = _grades_csv(course / "reports" / dino.id / "grades.csv")
    assert [rows["ann"][k] for k in ("manual", "total", "needs_manual_grading")] == ["4.5", "20.5", "no"]
