"""The grading contract: generated files are current, the test-cell contract holds, in-kernel feedback is quiet and
fair, failures read as expected-versus-got and tell the student's lines from given code, and the grade command keeps
its JSON contract."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import pytest
import torch

from autograder.assignment.course import Assignment, assignment_ids, cells_by_grade_id, nbgrader_meta, source_of
from autograder.commands import venv_env
from autograder.runtime.definitions import reference
from autograder.runtime.notebook_check import check
from autograder.runtime.runner import GradingFailure, describe_exception, grade_unit, register_source
from dinocourse import REPO_ROOT

ASSIGNMENTS = assignment_ids()


def autograder(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=venv_env())


def test_committed_releases_are_up_to_date():
    result = autograder("release", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_reference_values_are_up_to_date():
    result = autograder("reference", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_freshness_check_sees_a_changed_value_but_not_another_cpus_rounding():
    from autograder.commands.reference_values import differences

    old = {"about": "x", "unit": {"losses": [2.2589502334594727, 0.5], "center": [6.666991248494014e-05]}}
    rounding = {"about": "y", "unit": {"losses": [2.2589471340179443, 0.5], "center": [6.667130946880206e-05]}}
    assert differences(rounding, old) == []  # measured: the same solution on two CPUs
    changed = {"about": "x", "unit": {"losses": [2.2589502334594727 * (1 + 1e-4), 0.5],
                                      "center": [6.666991248494014e-05]}}
    found = differences(changed, old)
    assert len(found) == 1 and found[0].startswith("/unit/losses[0]: 2.2589502334594727 in the file, now 2.2591")
    shorter = differences({"unit": {"losses": [1.0]}}, {"unit": {"losses": [1.0, 2.0]}})
    assert shorter == ["/unit/losses: 2 values, now 1"]


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_every_test_cell_grades_one_unit_with_points_and_a_one_line_docstring(assignment_id):
    assignment = Assignment.load(assignment_id)
    cells = cells_by_grade_id(assignment.solution)
    for grade_id, test in assignment.tests.items():
        meta = nbgrader_meta(cells[grade_id])
        assert test.points > 0 and meta["locked"], grade_id
        docstring = ast.get_docstring(ast.parse(source_of(cells[grade_id])))
        assert docstring and "\n" not in docstring, f"{grade_id}: no one-line docstring"
        if test.kind == "hidden":
            assert f'autograder.check("{test.unit}")' in source_of(cells[grade_id])
    assert {t.unit for t in assignment.tests.values() if t.kind == "hidden"} == set(assignment.units)
    assignment.grader_check()


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_a_visible_test_cell_uses_only_its_own_units_names(assignment_id):
    """So a visible test's verdict cannot depend on another unit (no double jeopardy, in a kernel either)."""
    assignment = Assignment.load(assignment_id)
    ref = reference(assignment)
    cells = cells_by_grade_id(assignment.solution)
    for grade_id, test in assignment.tests.items():
        if test.kind != "visible":
            continue
        used = {n.id for n in ast.walk(ast.parse(source_of(cells[grade_id]))) if isinstance(n, ast.Name)}
        others = set(ref.api_names) - set(ref.names[test.unit])
        assert not used & others, f"{grade_id} uses {sorted(used & others)} of other units or given code"


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_each_unit_is_defined_in_its_own_cell_only(assignment_id):
    ref = reference(Assignment.load(assignment_id))
    seen = {}
    for unit, names in ref.names.items():
        assert names, unit
        for name in names:
            assert name not in seen, f"{name} is defined by both {seen[name]} and {unit}"
            seen[name] = unit


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_release_reads_like_the_solution_without_solutions_or_hidden_tests(assignment_id):
    assignment = Assignment.load(assignment_id)
    solution, release = assignment.solution, assignment.release
    assert len(solution["cells"]) == len(release["cells"])
    text = "\n".join(source_of(c) for c in release["cells"])
    for leak in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "autograder.check"):
        assert leak not in text, leak
    for ours, theirs in zip(solution["cells"], release["cells"], strict=True):
        assert not theirs.get("outputs")
        meta = nbgrader_meta(ours)
        if meta.get("solution") and ours["cell_type"] == "code":
            regions = source_of(ours).count("### BEGIN SOLUTION")
            assert source_of(theirs).count("### START CODE HERE ###") == regions
            assert source_of(theirs).count("is not implemented yet: write your code between START CODE HERE") == regions
        elif meta.get("solution"):
            assert "YOUR ANSWER HERE" in source_of(theirs)
        elif not meta.get("grade"):
            assert source_of(theirs) == source_of(ours)  # prose and given code are the same


def test_in_kernel_feedback_restores_names_and_random_state(dino, capsys):
    names = dict(vars(reference(dino).module))
    before = dict(names)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    check("dino_loss", names)
    assert torch.equal(torch.get_rng_state(), state)
    assert names.keys() == before.keys() and all(names[k] is before[k] for k in names)
    out = capsys.readouterr()
    assert "all 7 checks of `dino_loss` passed" in out.out and not out.err


def test_a_failure_reads_as_expected_versus_got_without_our_traceback(dino):
    names = dict(vars(reference(dino).module))
    code = source_of(cells_by_grade_id(dino.solution)["dino_loss"])
    exec(code.replace("if s_idx == t_idx:", "if False:"), names)  # noqa: S102 - a planted bug
    with pytest.raises(GradingFailure) as err:
        check("dino_loss", names)
    report = str(err.value)
    assert re.fullmatch(r"Part II. The loss function: [1-7] of 7 checks of `dino_loss` failed", report.splitlines()[0])
    assert "expected" in report and "got" in report and "Revisit Part II" in report
    assert "Traceback" not in report and "autograder/" not in report
    assert err.value._render_traceback_() == report.splitlines()
    kwargs = dict(reference=reference(dino), graders=dino.graders_dir, part="IV", values=dino.values["dino_trainer"])
    assert all(r.passed for r in grade_unit("dino_trainer", names, **kwargs))  # the trainer uses the reference loss


def _raised(cell: str, call: str):
    names: dict = {}
    register_source("<cell under test>", cell)
    exec(compile(cell, "<cell under test>", "exec"), names)  # noqa: S102 - the test's own code
    try:
        exec(call, names)  # noqa: S102
    except Exception as err:  # noqa: BLE001 - the exception is the subject
        return describe_exception(err, err.__traceback__)
    raise AssertionError("nothing was raised")


CELL = '''class Trainer:
    def __init__(self):
        ### START CODE HERE ###
        self.state = {"lr": lambda: 0}
        ### END CODE HERE ###

    def save(self):
        import pickle
        return pickle.dumps(self.state)

    def step(self):
        ### START CODE HERE ###
        return 1 / 0
        ### END CODE HERE ###


### START CODE HERE ###
def checkpoint():
    return Trainer().save()
### END CODE HERE ###
'''


def test_an_exception_in_given_code_is_reported_as_such_with_its_cause():
    message = _raised(CELL, "checkpoint()")
    assert message.startswith("the given code raised") and "Can't pickle" in message, message
    assert "not yours" in message and "in save, line 9: return pickle.dumps(self.state)" in message
    assert "called from your code in checkpoint, line 19: return Trainer().save()" in message
    assert "your code raised" not in message


def test_an_exception_in_the_students_lines_is_theirs():
    message = _raised(CELL, "Trainer().step()")
    assert message.startswith("your code raised ZeroDivisionError: division by zero (in step, line 13")


def test_a_long_exception_message_keeps_the_lines_after_the_first():
    message = _raised("def f():\n    raise RuntimeError('first line\\nthe clue is here\\nthird')\n", "f()")
    assert "the clue is here" in message


def test_grade_refuses_a_missing_file_and_reports_a_file_that_is_not_a_notebook(tmp_path):
    result = autograder("grade", tmp_path / "nothing.ipynb")
    assert result.returncode == 2 and "no such file" in result.stderr
    bad = tmp_path / "01_dino" / "dino.ipynb"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xfe not json")
    result = autograder("grade", bad, "--json", tmp_path / "out.json")
    assert result.returncode == 0, result.stderr
    graded = json.loads((tmp_path / "out.json").read_text())
    assert graded["status"] == "invalid-notebook" and graded["score"] == 0
    assert "not UTF-8" in result.stdout and "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
def test_grade_gives_the_solution_full_marks_and_writes_the_json_contract(dino, tmp_path):
    out = tmp_path / "grade.json"
    result = autograder("grade", dino.solution_path, "--json", out)
    assert result.returncode == 0, result.stdout + result.stderr
    graded = json.loads(out.read_text())
    assert set(graded) == {"notebook", "assignment", "status", "score", "max_score", "tests"}
    assert graded["score"] == graded["max_score"] == 16 and graded["status"] == "ok"
    for grade_id, test in graded["tests"].items():
        assert set(test) == {"unit", "kind", "points", "max_points", "passed", "message"}
        assert test["passed"] and test["points"] == test["max_points"] > 0, (grade_id, test)
        assert grade_id.startswith(f"test_{test['unit']}_")
    assert "16 / 16" in result.stdout


@pytest.mark.slow
def test_grade_gives_the_stubs_zero_with_clear_messages(dino, tmp_path):
    result = autograder("grade", dino.release_path, "--json", tmp_path / "grade.json")
    assert result.returncode == 0, result.stdout + result.stderr
    graded = json.loads((tmp_path / "grade.json").read_text())
    assert graded["score"] == 0 and graded["max_score"] == 16
    for grade_id, test in graded["tests"].items():
        assert not test["passed"] and test["message"], grade_id
        assert "Traceback" not in test["message"] and "autograder/" not in test["message"]
    assert "DINOLoss.__init__ is not implemented yet" in graded["tests"]["test_dino_loss_hidden"]["message"]
    assert "DINOLoss.__init__ is not implemented yet" in graded["tests"]["test_dino_loss_visible"]["message"]


@pytest.mark.slow
def test_an_added_helper_cell_and_an_extra_import_in_the_setup_cell_count(dino, tmp_path):
    """The student's notebook runs as they wrote it: a helper in a new cell and an import added to the setup cell."""
    from autograder.proof.submissions import correct

    nb = correct(dino)
    cells = nb["cells"]
    setup = next(c for c in cells if "setup" in c["metadata"].get("tags", []))
    setup["source"] = source_of(setup) + "\nimport math as my_math\n"
    loss = cells_by_grade_id(nb)["dino_loss"]
    index = cells.index(loss)
    cells.insert(index, {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "id": "helper",
                         "source": "def sharpen(x, temperature):\n    return x / temperature * my_math.exp(0)\n"})
    loss["source"] = source_of(loss).replace("(student_output / self.student_temp)",
                                             "sharpen(student_output, self.student_temp)")
    path = tmp_path / dino.id / dino.notebook
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    result = autograder("grade", path, "--json", tmp_path / "grade.json")
    graded = json.loads((tmp_path / "grade.json").read_text())
    assert graded["score"] == 16 and graded["status"] == "ok", result.stdout


@pytest.mark.slow
def test_the_instructors_shell_does_not_reach_the_graded_notebook(dino, tmp_path):
    """A head that exists only when DINO_MODE is unset: graded with DINO_MODE=full in the shell, it still counts."""
    from autograder.proof.submissions import correct

    nb = correct(dino)
    head = cells_by_grade_id(nb)["dino_head"]
    head["source"] = "import os\nif os.environ.get('DINO_MODE') is None:\n" + "\n".join(
        "    " + line for line in source_of(head).splitlines())
    path = tmp_path / dino.id / dino.notebook
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--json", str(tmp_path / "g.json")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**venv_env(), "DINO_MODE": "full", "DINO_DATA": str(tmp_path / "nowhere")})
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "g.json").read_text())["score"] == 16, done.stdout
