"""The autograder: the release and the reference values are current, the test-cell contract holds, grading in a
kernel is fair and quiet, and both `python -m autograder grade` and real `nbgrader autograde` give the solution
full marks and the released stubs zero."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.grade import graded_test_cells
from autograder.release import venv_env
from autograder.runner import GradingFailure, check, grade_unit
from autograder.units import TEST_ID, UNITS, nbgrader_meta, reference, unit_cells
from dinocourse import REPO_ROOT
from dinocourse.notebook import RELEASE_NOTEBOOK as RELEASE
from dinocourse.notebook import SOLUTION_NOTEBOOK


def autograder(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=venv_env())


def test_committed_release_is_up_to_date():
    result = autograder("release", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_reference_values_are_up_to_date():
    result = autograder("reference", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_test_cell_grades_one_unit_with_points_and_a_one_line_docstring():
    nb = nbformat.read(SOLUTION_NOTEBOOK, as_version=4)
    tests = graded_test_cells(nb)
    hidden = set()
    for grade_id, cell in tests.items():
        match = TEST_ID.match(grade_id)
        assert match and match["unit"] in UNITS, grade_id
        assert nbgrader_meta(cell)["points"] > 0 and nbgrader_meta(cell)["locked"]
        docstring = ast.get_docstring(ast.parse(cell.source))
        assert docstring and "\n" not in docstring, f"{grade_id}: no one-line docstring"
        if match["kind"] == "hidden":
            hidden.add(match["unit"])
            assert f'autograder.check("{match["unit"]}")' in cell.source
    assert hidden == set(UNITS), "every unit has a hidden test cell"
    assert set(unit_cells(nb)) == set(UNITS)


def test_each_unit_is_defined_in_its_own_cell_only():
    ref = reference()
    seen = {}
    for unit, names in ref.names.items():
        assert names, unit
        for name in names:
            assert name not in seen, f"{name} is defined by both {seen[name]} and {unit}"
            seen[name] = unit


def test_release_reads_like_the_solution_without_solutions_or_hidden_tests():
    solution, release = (nbformat.read(p, as_version=4) for p in (SOLUTION_NOTEBOOK, RELEASE))
    assert len(solution.cells) == len(release.cells)
    text = "\n".join(c.source for c in release.cells)
    for leak in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "autograder.check", "register_buffer(\"center\""):
        assert leak not in text, leak
    for ours, theirs in zip(solution.cells, release.cells, strict=True):
        assert all(not o.get("outputs") for o in [theirs] if o.cell_type == "code")
        meta = nbgrader_meta(ours)
        if meta.get("solution") and ours.cell_type == "code":
            n_regions = ours.source.count("### BEGIN SOLUTION")
            assert theirs.source.count("### START CODE HERE ###") == n_regions
            assert theirs.source.count("raise NotImplementedError(") == n_regions
            assert theirs.source.count("is not implemented yet: write your code between START CODE HERE") == n_regions
        elif meta.get("solution"):
            assert "YOUR ANSWER HERE" in theirs.source
        elif not meta.get("grade"):
            assert theirs.source == ours.source  # prose and given code are the same


def test_grading_in_a_kernel_namespace_restores_names_and_random_state(capsys):
    names = dict(vars(reference().module))
    before = dict(names)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    check("dino_loss", names)
    assert torch.equal(torch.get_rng_state(), state)
    assert names.keys() == before.keys() and all(names[k] is before[k] for k in names)
    out = capsys.readouterr()
    assert "all 7 checks of `dino_loss` passed" in out.out and not out.err


def test_a_failure_reads_as_expected_versus_got_without_our_traceback():
    names = dict(vars(reference().module))
    solution = nbformat.read(SOLUTION_NOTEBOOK, as_version=4)
    code = solution.cells[unit_cells(solution)["dino_loss"]].source
    exec(code.replace("if s_idx == t_idx:", "if False:"), names)  # noqa: S102 - a planted bug
    with pytest.raises(GradingFailure) as err:
        check("dino_loss", names)
    report = str(err.value)
    assert re.fullmatch(r"Part II. The loss function: [1-7] of 7 checks of `dino_loss` failed", report.splitlines()[0])
    assert "expected" in report and "got" in report and "Revisit Part II" in report
    assert "Traceback" not in report and "autograder/" not in report
    assert err.value._render_traceback_() == report.splitlines()
    assert all(r.passed for r in grade_unit("dino_trainer", names)[1])  # the trainer uses the reference loss


def test_grade_refuses_a_file_that_is_not_a_notebook(tmp_path):
    bad = tmp_path / "dino.ipynb"
    bad.write_bytes(b"\xff\xfe not json")
    result = autograder("grade", bad)
    assert result.returncode == 2
    assert "is not a Jupyter notebook" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_grade_gives_the_solution_full_marks_and_writes_the_json_contract(tmp_path):
    out = tmp_path / "grade.json"
    result = autograder("grade", SOLUTION_NOTEBOOK, "--json", out)
    assert result.returncode == 0, result.stdout + result.stderr
    graded = json.loads(out.read_text())
    assert set(graded) == {"notebook", "score", "max_score", "tests"}
    assert graded["score"] == graded["max_score"] == 16
    for grade_id, test in graded["tests"].items():
        assert set(test) == {"unit", "points", "max_points", "passed", "message"}
        assert test["passed"] and test["points"] == test["max_points"] > 0, (grade_id, test)
        assert grade_id.startswith(f"test_{test['unit']}_")
    assert "16 / 16" in result.stdout


@pytest.mark.slow
def test_grade_gives_the_stubs_zero_with_clear_messages_and_reports_a_deleted_test_cell(tmp_path):
    nb = nbformat.read(RELEASE, as_version=4)
    nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") != "test_pseudo_labels_hidden"]
    submission = tmp_path / "dino.ipynb"
    nbformat.write(nb, submission)
    result = autograder("grade", submission, "--json", tmp_path / "grade.json")
    assert result.returncode == 0, result.stdout + result.stderr
    graded = json.loads((tmp_path / "grade.json").read_text())
    assert graded["score"] == 0 and graded["max_score"] == 16
    assert "missing from the notebook" in graded["tests"]["test_pseudo_labels_hidden"]["message"]
    for grade_id, test in graded["tests"].items():
        assert not test["passed"] and test["message"], grade_id
        assert "Traceback" not in test["message"] and "autograder/" not in test["message"]
    assert "DINOLoss.__init__ is not implemented yet" in graded["tests"]["test_dino_loss_hidden"]["message"]


@pytest.mark.slow
def test_grade_in_a_real_kernel_is_fair_and_stderr_safe(tmp_path):
    """A wrong loss costs only the loss's points; the older weight-norm API (which warns) costs nothing."""
    nb = nbformat.read(SOLUTION_NOTEBOOK, as_version=4)
    for cell in nb.cells:
        cell.source = (cell.source
                       .replace("(teacher_output - self.center) / teacher_temp", "teacher_output / teacher_temp")
                       .replace("nn.utils.parametrizations.weight_norm(", "nn.utils.weight_norm(")
                       .replace("self.last_layer.parametrizations.weight.original0", "self.last_layer.weight_g"))
    submission = tmp_path / "dino.ipynb"
    nbformat.write(nb, submission)
    result = autograder("grade", submission, "--json", tmp_path / "grade.json")
    tests = json.loads((tmp_path / "grade.json").read_text())["tests"]
    lost = {g for g, t in tests.items() if not t["passed"]}
    assert lost == {"test_dino_loss_visible", "test_dino_loss_hidden"}, result.stdout


def nbgrader(*args, course: Path):
    return subprocess.run(["nbgrader", *args, f"--CourseDirectory.root={course}",
                           f"--CourseDirectory.db_url=sqlite:///{course}/gradebook.db"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=venv_env())


@pytest.mark.slow
def test_real_nbgrader_autograde_gives_the_solution_full_marks_and_the_stubs_zero(tmp_path):
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    (course / "solutions" / "01_dino").mkdir(parents=True)
    shutil.copy(SOLUTION_NOTEBOOK, course / "solutions" / "01_dino" / "dino.ipynb")
    done = nbgrader("generate_assignment", "01_dino", "--force", course=course)
    assert done.returncode == 0, done.stdout + done.stderr
    for student, notebook in {"solution": SOLUTION_NOTEBOOK, "stubs": RELEASE}.items():
        target = course / "submitted" / student / "01_dino" / "dino.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(notebook, target)
    done = nbgrader("autograde", "01_dino", "--create", course=course)
    assert done.returncode == 0, done.stdout + done.stderr
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        tests = {g.name for g in gb.find_notebook("dino", "01_dino").grade_cells if g.name.startswith("test_")}
        assert len(tests) == 9
        for student, expected in {"solution": "max", "stubs": 0}.items():
            for grade_id in tests:
                grade = gb.find_grade(grade_id, "dino", "01_dino", student)
                want = grade.max_score if expected == "max" else 0
                assert grade.auto_score == want, (student, grade_id, grade.auto_score)
    executed = nbformat.read(course / "autograded" / "stubs" / "01_dino" / "dino.ipynb", as_version=4)
    hidden = next(c for c in executed.cells if nbgrader_meta(c).get("grade_id") == "test_dino_loss_hidden")
    error = next(o for o in hidden.outputs if o.output_type == "error")
    assert error.ename == "GradingFailure" and "DINOLoss.__init__ is not implemented yet" in error.evalue
    assert not any("autograder/" in line for line in error.traceback)
