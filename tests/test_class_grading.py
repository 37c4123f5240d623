"""Class grading: every example submission (correct, partial, hostile, broken) gets its status and its honest points;
nbgrader's gradebook, the feedback, grades.csv and the report hold them; reruns grade only what changed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from corpus import LIMITS, class_results, grade_class, unit_points

from autograder.assignment.course import COURSE_ROOT, assignment_ids
from autograder.assignment.submission import inspect
from autograder.commands import venv_env
from autograder.grading.verdict import Status, TestResult, Verdict
from autograder.proof.submissions import examples, write_class


@pytest.fixture(scope="module")
def catalog(dino):
    return examples(dino).EXAMPLES


def test_inspection_runs_nothing_and_tells_broken_from_tampered(dino, catalog, tmp_path):
    for name, example in catalog.items():
        path = tmp_path / name / dino.notebook
        example.write(dino, path)
        found = inspect(path.read_bytes(), dino)
        if example.status == "invalid-notebook":
            assert found.status == "invalid-notebook" and found.problems and not found.program, name
        elif name in ("duplicated-cells", "deleted-cells", "edited-tests"):
            assert found.status is None and found.tampering, name
        elif name in ("correct", "untouched", "partial"):
            assert found.status is None and not found.tampering and set(found.cells) == set(dino.units), name
    assert inspect(None, dino).status == "missing"


def test_the_program_is_the_students_notebook_without_experiments_and_test_cells(dino, catalog, tmp_path):
    path = tmp_path / dino.notebook
    catalog["correct"].write(dino, path)
    program = inspect(path.read_bytes(), dino).program
    kinds = {cell["kind"] for cell in program}
    assert kinds == {"given", "unit", "visible"}
    assert [c["unit"] for c in program if c["kind"] == "unit"] == list(dino.units)
    assert not any("autograder.check" in c["source"] or "trainer.train(" in c["source"] for c in program)
    visible = {c["grade_id"] for c in program if c["kind"] == "visible"}
    assert visible == {g for g, t in dino.tests.items() if t.kind == "visible"}


def test_an_empty_course_is_refused_with_a_clear_message(tmp_path):
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", "01_dino", "--course", str(tmp_path)],
                          capture_output=True, text=True, env=venv_env(), cwd=COURSE_ROOT, timeout=120)
    assert done.returncode == 2 and "no submissions: expected" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("arguments, said", [
    (["--timeout", "-5"], "--timeout: expected a number above 0, got -5"),
    (["--workers", "0"], "--workers: expected a number above 0, got 0"),
    (["--student", "nobody"], "no student 'nobody' in this class"),
    (["--partition", "cpu"], "--partition only apply with --executor submitit"),
    (["--executor", "submitit", "--slurm-option", "account"], "--slurm-option takes KEY=VALUE"),
])
def test_arguments_that_cannot_be_meant_are_refused_before_anything_is_graded(dino, tmp_path, arguments, said):
    (tmp_path / "submitted" / "ann" / dino.id).mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", dino.id, "--course", str(tmp_path),
                           *arguments], capture_output=True, text=True, env=venv_env(), cwd=COURSE_ROOT, timeout=120)
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "gradebook.db").exists() and not (tmp_path / "autograded").exists()


def test_an_unknown_assignment_is_refused_with_a_clear_message(tmp_path):
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", "99_nothing", "--course", str(tmp_path)],
                          capture_output=True, text=True, env=venv_env(), cwd=COURSE_ROOT, timeout=120)
    assert done.returncode == 2 and "unknown assignment '99_nothing'" in done.stderr and "01_dino" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("assignment", assignment_ids(), indirect=True)
def test_every_example_gets_its_status_and_exactly_its_honest_points(assignment, graded_class):
    _, got = graded_class
    full = unit_points(got["ex-correct"])
    assert sum(full.values()) == assignment.max_score
    wrong = {}
    for name, example in examples(assignment).EXAMPLES.items():
        result = got[f"ex-{name}"]
        expected = {u: (full[u] if u in example.honest else 0.0) for u in assignment.units}
        if result["status"] != example.status or unit_points(result) != expected:
            wrong[name] = (result["status"], unit_points(result))
    assert not wrong, wrong
    assert got["absent"]["status"] == "missing" and got["absent"]["score"] == 0


@pytest.mark.slow
def test_hostile_actions_are_reported_and_blocked(graded_class):
    _, got = graded_class
    assert not got["ex-correct"]["notices"] and not got["ex-correct"]["tampering"]
    assert any("network" in n for n in got["ex-network"]["notices"])
    assert any("PWNED.txt" in n for n in got["ex-write-outside"]["notices"])
    assert not (COURSE_ROOT / "PWNED.txt").exists()
    assert any("course file" in t for t in got["ex-read-solutions"]["tampering"])
    assert any("course database" in t for t in got["ex-gradebook-write"]["tampering"])
    assert any("changed the grader" in t for t in got["ex-monkeypatch"]["tampering"])
    assert any("million characters" in n for n in got["ex-huge-output"]["notices"])
    assert any("edited" in t for t in got["ex-edited-tests"]["tampering"])
    loop = got["ex-infinite-loop"]["units"]["dino_loss"]
    assert loop["status"] == "timeout" and "skipped" in loop["message"]


@pytest.mark.slow
def test_the_gradebook_is_nbgraders_and_holds_the_same_scores(dino, graded_class):
    from nbgrader.api import Gradebook

    course, got = graded_class
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for name, result in got.items():
            submission = gb.find_submission(dino.id, name)
            auto = sum(g.auto_score or 0 for nb in submission.notebooks for g in nb.grades if g.cell_type == "code")
            assert auto == result["score"], name
        answer = gb.find_grade("pseudo_labels_answer", "dino", dino.id, "ex-correct")
        assert answer.needs_manual_grade
    assert (course / "autograded" / "ex-correct" / dino.id / dino.notebook).is_file()


@pytest.mark.slow
def test_feedback_shows_messages_but_no_hidden_test_source(dino, graded_class):
    course, got = graded_class
    hidden = [cell["source"] for cell in dino.solution["cells"] if "HIDDEN TESTS" in "".join(cell["source"])]
    for name in got:
        page = (course / "feedback" / name / dino.id / "dino.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in page and "autograder.check(" not in page
        assert not any("".join(source) in page for source in hidden)
    partial = (course / "feedback" / "ex-partial" / dino.id / "dino.html").read_text()
    assert "expected" in partial and "Part II" in partial and "9 / 16" in partial


@pytest.mark.slow
def test_grades_csv_and_report(dino, graded_class):
    course, got = graded_class
    with (course / "reports" / dino.id / "grades.csv").open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(got)
    assert rows["ex-correct"]["total"] == "16" and rows["ex-partial"]["dino_loss"] == "0"
    assert rows["ex-non-utf8"]["status"] == "invalid-notebook"
    report = (course / "reports" / dino.id / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3 and "ex-monkeypatch" in report and "Checks failed most" in report
    assert "<h2>Grading time</h2>" in report and "Known mistakes named" in report


@pytest.fixture(scope="module")
def small_class(dino, tmp_path_factory):
    """Three honest students, graded once."""
    course = tmp_path_factory.mktemp("small")
    write_class(dino, course, ["correct", "partial", "untouched"])
    return course, grade_class(dino, course)


@pytest.mark.slow
def test_hostile_classmates_change_no_honest_grade(graded_class, small_class):
    _, crowded = graded_class
    _, clean = small_class
    for name in ("correct", "partial", "untouched"):
        assert clean[name]["tests"] == crowded[f"ex-{name}"]["tests"], name


def _autograde(dino, course, *extra):
    return subprocess.run([sys.executable, "-m", "autograder", "autograde", dino.id, "--course", str(course),
                           "--workers", "2", *LIMITS, *extra], capture_output=True, text=True, env=venv_env(),
                          cwd=COURSE_ROOT, timeout=1800)


@pytest.mark.slow
def test_a_rerun_grades_only_what_changed(dino, catalog, small_class):
    course, before = small_class
    assert "0 to grade" in _autograde(dino, course).stdout
    catalog["correct"].write(dino, course / "submitted" / "partial" / dino.id / dino.notebook)
    assert "1 to grade" in _autograde(dino, course).stdout
    after = class_results(dino, course)
    assert after["partial"]["score"] == 16
    assert {n: r["score"] for n, r in after.items() if n != "partial"} == \
        {n: r["score"] for n, r in before.items() if n != "partial"}
    catalog["partial"].write(dino, course / "submitted" / "partial" / dino.id / dino.notebook)
    _autograde(dino, course)


@pytest.mark.slow
def test_stopping_the_grader_midway_loses_no_finished_grade(dino, tmp_path):
    write_class(dino, tmp_path, ["correct", "partial", "untouched"])
    command = [sys.executable, "-m", "autograder", "autograde", dino.id, "--course", str(tmp_path), "--workers", "1",
               "--quiet"]
    process = subprocess.Popen(command, env=venv_env(), cwd=COURSE_ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not class_results(dino, tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = class_results(dino, tmp_path)
    assert 1 <= len(finished) < 3
    done = _autograde(dino, tmp_path)
    assert f"{3 - len(finished)} to grade" in done.stdout
    after = class_results(dino, tmp_path)
    assert set(after) == {"correct", "partial", "untouched"}
    assert all(after[name] == result for name, result in finished.items())


HANG_EVERYTHING = '''
def _hang(*args, **kwargs):
    while True:
        pass


class _Endless:
    init = __call__ = _hang


DINOHead.forward = DINOLoss.forward = LocalGlobalPathMNIST.__getitem__ = DINOTrainer.training_step = _hang
pseudo_label_counts = _hang
lr_schedule = wd_schedule = teacher_temp_schedule = ema_schedule = _Endless()
'''


@pytest.mark.slow
def test_the_time_limits_of_the_units_add_up_within_the_submissions(dino):
    """Every unit's checks run forever: each unit stops at its share of the time, and the whole within the limit."""
    from autograder.grading.engine import Engine, Settings
    from autograder.proof.submissions import correct
    from autograder.sandbox.isolation import Limits

    nb = correct(dino)
    nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "id": "hang",
                        "source": HANG_EVERYTHING})
    limit = 45.0
    engine = Engine(dino, Settings(Limits(timeout=limit, memory_mb=2048)))
    try:
        verdict = engine.grade(json.dumps(nb).encode())
    finally:
        engine.close()
    statuses = {unit: info.status for unit, info in verdict.units.items()}
    assert set(statuses.values()) == {Status.TIMEOUT}, statuses
    assert verdict.run["seconds"] <= limit + 5, verdict.run
    assert verdict.status == Status.TIMEOUT and all(not t.passed for t in verdict.tests.values()
                                                    if t.kind == "hidden")


def test_the_course_index_shows_every_assignment_graded_in_the_folder(tmp_path):
    from autograder.commands.report import write_course_index, write_csv

    def result(student, score, status="ok"):
        return Verdict(student=student, status=Status(status), score=score, max_score=10,
                       tests={"t": TestResult(unit="u", points=score, max_points=10, passed=score == 10)})

    reports = tmp_path / "reports"
    for aid, results in {"01_a": [result("ann", 10), result("bob", 4)],
                         "02_b": [result("ann", 7), result("cy", 0, "timeout")]}.items():
        (reports / aid).mkdir(parents=True)
        write_csv(reports / aid / "grades.csv", results, ["u"])
    index = write_course_index(reports).read_text()
    assert "01_a/report.html" in index and "02_b/report.html" in index and "7.00 / 10" in index
    rows = list(csv.reader((reports / "grades.csv").open()))
    assert rows[0] == ["student", "01_a total", "02_b total", "01_a status", "02_b status",
                       "01_a needs manual grading", "02_b needs manual grading"]
    assert rows[1:] == [["ann", "10", "7", "ok", "ok", "no", "no"],
                        ["bob", "4", "", "ok", "not in the class", "no", ""],
                        ["cy", "", "0", "not in the class", "timeout", "", "no"]]
