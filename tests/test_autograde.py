"""Class grading: every example submission (correct, partial, hostile, broken) gets its status and its honest points.

The slow tests grade the whole set of examples once (``python -m autograder autograde``), then check statuses,
points, nbgrader's gradebook, the feedback, grades.csv, the report, resuming, and that the hostile ones change
nobody else's grade.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.autograde import RESULT_FILE, Assignment, inspect_submission
from autograder.classreport import failed_checks
from autograder.examples import EXAMPLES, write_class
from autograder.release import venv_env
from autograder.sandbox import probe
from autograder.units import UNITS
from dinocourse import REPO_ROOT
from dinocourse.notebook import RELEASE_NOTEBOOK, SOLUTION_NOTEBOOK

ISOLATION = probe()
CONTAINED = bool(ISOLATION.bubblewrap and ISOLATION.cgroup_memory and ISOLATION.cgroup_pids)


@functools.cache
def assignment():
    values = REPO_ROOT / "autograder" / "reference_values.json"
    return Assignment.load("01_dino", SOLUTION_NOTEBOOK, RELEASE_NOTEBOOK, values)


@pytest.mark.parametrize("name", [n for n, e in EXAMPLES.items() if e.status in ("invalid-notebook",)]
                         + ["duplicated-cells", "deleted-cells", "edited-tests", "correct", "untouched"])
def test_inspection_without_running_anything(tmp_path, name):
    path = tmp_path / "dino.ipynb"
    EXAMPLES[name].write(path)
    found = inspect_submission(path, assignment())
    expected = EXAMPLES[name].status
    if expected == "invalid-notebook":
        assert found.status == "invalid-notebook" and found.problems and not any(found.cells.values())
    elif expected == "tampered":
        assert found.status is None and found.tampering
    else:
        assert found.status is None and not found.tampering and set(found.cells) == set(UNITS)


def test_most_failed_checks_count_a_parametrised_check_once_and_keep_brackets_of_the_title():
    def result(*names):
        return {"units": {"dino_head": {"checks": [{"name": n, "passed": False} for n in names]}}}

    counts = failed_checks([result("Outputs lie in [-1, 1] [0.001]", "Outputs lie in [-1, 1] [1000.0]", "Shape"),
                            result("Outputs lie in [-1, 1] [1.0]")])
    assert counts == {"dino_head: Outputs lie in [-1, 1]": 2, "dino_head: Shape": 1}


def test_a_missing_notebook_is_missing(tmp_path):
    found = inspect_submission(tmp_path / "dino.ipynb", assignment())
    assert found.status == "missing" and "no dino.ipynb" in found.problems[0]


def autograde(course: Path, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", "01_dino", "--course", str(course),
                           "--timeout", "60", "--memory", "2048", "--workers", "2", *extra],
                          capture_output=True, text=True, env=venv_env(), cwd=REPO_ROOT, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def results(course: Path) -> dict[str, dict]:
    return {p.parent.parent.name: json.loads(p.read_text()) for p in course.glob(f"autograded/*/01_dino/{RESULT_FILE}")}


def unit_points(result: dict) -> dict[str, float]:
    points = dict.fromkeys(UNITS, 0.0)
    for test in result["tests"].values():
        points[test["unit"]] += test["points"]
    return points


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    names = [n for n in EXAMPLES if CONTAINED or n not in ("fork-bomb", "memory-bomb")]
    course = tmp_path_factory.mktemp("course")
    write_class(course, names)
    (course / "submitted" / "absent" / "01_dino").mkdir(parents=True)  # a student folder without the notebook
    done = autograde(course)
    return course, results(course), done.stdout


@pytest.mark.slow
def test_every_example_gets_its_status(graded):
    _, got, _ = graded
    expected = {n: e.status for n, e in EXAMPLES.items() if n in got}
    expected["absent"] = "missing"
    assert {n: r["status"] for n, r in got.items()} == expected


@pytest.mark.slow
def test_every_example_gets_exactly_its_honest_points(graded):
    _, got, _ = graded
    full = unit_points(got["correct"])
    assert sum(full.values()) == assignment().max_score == 16
    for name, result in got.items():
        honest = EXAMPLES[name].honest.get("correct", set()) if name in EXAMPLES else set()
        assert unit_points(result) == {u: (full[u] if u in honest else 0.0) for u in UNITS}, name


@pytest.mark.slow
def test_hostile_actions_are_reported_and_blocked(graded):
    course, got, _ = graded
    assert not got["correct"]["notices"] and not got["correct"]["tampering"]
    assert any("network" in n for n in got["network"]["notices"])
    assert any("PWNED.txt" in n for n in got["write-outside"]["notices"])
    assert not (REPO_ROOT / "PWNED.txt").exists()
    assert any("course file" in t for t in got["read-solutions"]["tampering"])
    assert any("changed the grader" in t for t in got["monkeypatch"]["tampering"])
    assert any("million characters" in n for n in got["huge-output"]["notices"])
    assert any("edited" in t for t in got["edited-tests"]["tampering"])
    assert got["infinite-loop"]["units"]["dino_loss"]["status"] == "timeout"


@pytest.mark.slow
def test_the_gradebook_is_nbgraders_and_holds_the_same_scores(graded):
    from nbgrader.api import Gradebook

    course, got, _ = graded
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for name, result in got.items():
            submission = gb.find_submission("01_dino", name)
            auto = sum(g.auto_score or 0 for nb in submission.notebooks for g in nb.grades
                       if g.cell_type == "code")
            assert auto == result["score"], name
        answer = gb.find_grade("pseudo_labels_answer", "dino", "01_dino", "correct")
        assert answer.needs_manual_grade
    assert (course / "autograded" / "correct" / "01_dino" / "dino.ipynb").is_file()


@pytest.mark.slow
def test_feedback_shows_messages_but_no_hidden_test_source(graded):
    course, got, _ = graded
    hidden = [c.source for c in nbformat.read(SOLUTION_NOTEBOOK, as_version=4).cells if "HIDDEN TESTS" in c.source]
    for name in got:
        page = (course / "feedback" / name / "01_dino" / "dino.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in page and "autograder.check(" not in page
        assert not any(source in page for source in hidden)
    partial = (course / "feedback" / "partial" / "01_dino" / "dino.html").read_text()
    assert "expected" in partial and "Part II" in partial and "9 / 16" in partial


@pytest.mark.slow
def test_grades_csv_and_report(graded):
    course, got, stdout = graded
    with (course / "reports" / "01_dino" / "grades.csv").open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(got)
    assert rows["correct"]["total"] == "16" and rows["partial"]["dino_loss"] == "0"
    assert rows["non-utf8"]["status"] == "invalid-notebook"
    report = (course / "reports" / "01_dino" / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2 and "monkeypatch" in report and "Checks failed most" in report
    assert "correct" in stdout and "16/16" in stdout


@pytest.mark.slow
def test_rerun_skips_what_is_graded_and_regrades_what_changed(graded):
    course, before, _ = graded
    assert "0 to grade" in autograde(course).stdout
    EXAMPLES["correct"].write(course / "submitted" / "partial" / "01_dino" / "dino.ipynb")
    done = autograde(course)
    assert "1 to grade" in done.stdout
    after = results(course)
    assert after["partial"]["score"] == 16
    assert {n: r["score"] for n, r in after.items() if n != "partial"} == \
        {n: r["score"] for n, r in before.items() if n != "partial"}
    EXAMPLES["partial"].write(course / "submitted" / "partial" / "01_dino" / "dino.ipynb")
    autograde(course)


@pytest.mark.slow
def test_hostile_classmates_change_no_honest_grade(graded, tmp_path):
    _, full, _ = graded
    write_class(tmp_path, ["correct", "partial"])
    autograde(tmp_path)
    clean = results(tmp_path)
    for name in ("correct", "partial"):
        assert clean[name]["tests"] == full[name]["tests"]


def test_an_empty_course_is_refused_with_a_clear_message(tmp_path):
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", "01_dino", "--course", str(tmp_path)],
                          capture_output=True, text=True, env=venv_env(), cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 2 and "no submissions: expected" in done.stderr


@pytest.mark.slow
def test_stopping_the_grader_midway_loses_no_finished_grade(tmp_path):
    write_class(tmp_path, ["correct", "partial", "untouched"])
    command = [sys.executable, "-m", "autograder", "autograde", "01_dino", "--course", str(tmp_path), "--workers", "1",
               "--quiet"]
    process = subprocess.Popen(command, env=venv_env(), cwd=REPO_ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not results(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = results(tmp_path)
    assert 1 <= len(finished) < 3
    done = autograde(tmp_path)
    assert f"{3 - len(finished)} to grade" in done.stdout
    after = results(tmp_path)
    assert set(after) == {"correct", "partial", "untouched"}
    assert all(after[name] == result for name, result in finished.items())
