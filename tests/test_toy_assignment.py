"""An assignment is a folder: a toy assignment (two units, their graders, nothing else) in a temporary course is
released, gets its reference values, and is graded (one notebook, a class with feedback and report) with no change
to the framework; an unknown assignment is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.assignment.course import COURSE_ROOT
from autograder.commands import venv_env


def code(source: str, grade_id: str | None = None, points: float = 0, solution: bool = False, tags=()) -> dict:
    meta: dict = {"tags": list(tags)} if tags else {}
    if grade_id:
        meta["nbgrader"] = {"grade": bool(points), "grade_id": grade_id, "locked": not solution, "schema_version": 3,
                            "solution": solution, "task": False, **({"points": points} if points else {})}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": source,
            "id": grade_id or f"c{abs(hash(source)) % 10**8}"}


def markdown(source: str, grade_id: str | None = None, points: float = 0) -> dict:
    meta = {"nbgrader": {"grade": True, "grade_id": grade_id, "locked": False, "points": points, "schema_version": 3,
                         "solution": True, "task": False}} if grade_id else {}
    return {"cell_type": "markdown", "metadata": meta, "source": source, "id": grade_id or f"m{abs(hash(source))}"}


def region(body: str) -> str:
    return ("    ### START CODE HERE ###\n    ### BEGIN SOLUTION\n" + body + "\n    ### END SOLUTION\n"
            "    ### END CODE HERE ###\n")


SOLUTION = {
    "cells": [
        markdown("# Toy assignment\n\nTwo small functions."),
        code("import os\nOFFSET = int(os.environ.get('TOY_OFFSET', '0'))", tags=["setup"]),
        markdown("# Part A. Adding"),
        code("def add(a, b):\n" + region("    return a + b + OFFSET"), "add", solution=True, tags=["api"]),
        code('"""Visible test of Part A: one sum."""\n'
             'assert add(2, 3) == 5, f"add(2, 3): expected 5, got {add(2, 3)}"\nprint("ok")',
             "test_add_visible", points=1),
        code('"""Hidden tests of Part A: they run when your notebook is graded."""\n### BEGIN HIDDEN TESTS\n'
             'import autograder\n\nautograder.check("add")\n### END HIDDEN TESTS', "test_add_hidden", points=2),
        markdown("# Part B. Scaling"),
        code("def scale(xs, k):\n" + region("    return [add(x, 0) * k for x in xs]"), "scale", solution=True,
             tags=["api"]),
        code('"""Hidden tests of Part B: they run when your notebook is graded."""\n### BEGIN HIDDEN TESTS\n'
             'import autograder\n\nautograder.check("scale")\n### END HIDDEN TESTS', "test_scale_hidden", points=3),
        code("print(scale([1, 2], 10))  # an experiment: not graded", tags=["figure-none"]),
        markdown("**Why?**\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", "why", points=1),
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "autograder": {"env": {"TOY_OFFSET": "0"}}},
    "nbformat": 4, "nbformat_minor": 5,
}

GRADERS = {
    "__init__.py": '"""The toy assignment\'s graders."""\n',
    "cases.py": '''PAIRS = [(1, 2), (3, 4), (-1, 1)]


def generate(ns, workdir):
    return {"add": {"sums": [ns.add(a, b) for a, b in PAIRS]}, "scale": {"scaled": ns.scale([1, 2, 3], 3)}}
''',
    "test_add.py": '''from autograder.runtime.checks import expect

from .cases import PAIRS


def test_adds(ns, values):
    """add gives the reference's sums"""
    for (a, b), expected in zip(PAIRS, values["sums"]):
        expect(ns.add(a, b) == expected, f"add({a}, {b}): expected {expected}, got {ns.add(a, b)}")
''',
    "test_scale.py": '''from autograder.runtime.checks import expect


def test_scales(ns, values):
    """scale multiplies every number"""
    got = ns.scale([1, 2, 3], 3)
    expect(got == values["scaled"], f"scale([1, 2, 3], 3): expected {values['scaled']}, got {got}")
''',
}


def run(*args, cwd=COURSE_ROOT):
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], capture_output=True, text=True,
                          env=venv_env(), cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toycourse")
    (root / "solutions" / "toy").mkdir(parents=True)
    (root / "solutions" / "toy" / "toy.ipynb").write_text(json.dumps(SOLUTION, indent=1))
    graders = root / "autograder" / "graders" / "toy"
    graders.mkdir(parents=True)
    for name, text in GRADERS.items():
        (graders / name).write_text(text)
    for command in ("release", "reference"):
        done = run(command, "toy", "--root", root)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


def submission(root: Path, add_body: str | None, scale_body: str | None) -> dict:
    nb = json.loads((root / "assignments" / "toy" / "toy.ipynb").read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        body = {"add": add_body, "scale": scale_body}.get(grade_id)
        if body is not None:
            cell["source"] = "".join(cell["source"]).replace(
                "    raise NotImplementedError", body + "\n    raise NotImplementedError", 1)
    return nb


def test_the_release_and_the_reference_values_come_from_the_toy_solution(toy):
    release = (toy / "assignments" / "toy" / "toy.ipynb").read_text()
    assert "return a + b" not in release and "autograder.check" not in release and "add is not implemented" in release
    values = json.loads((toy / "autograder" / "graders" / "toy" / "reference_values.json").read_text())
    assert values["add"]["sums"] == [3, 7, 0] and values["scale"]["scaled"] == [3, 6, 9]


@pytest.mark.slow
def test_one_toy_notebook_is_graded(toy, tmp_path):
    path = tmp_path / "toy.ipynb"
    path.write_text(json.dumps(submission(toy, "    return a + b", "    return [x * k for x in xs]")))
    done = run("grade", path, "--root", toy, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["assignment"] == "toy" and result["score"] == result["max_score"] == 6, done.stdout
    assert "(+ 1 points graded by hand)" in done.stdout


@pytest.mark.slow
def test_a_toy_class_is_graded_with_feedback_and_report(toy):
    students = {"alice": ("    return a + b", "    return [x * k for x in xs]"),
                "bob": (None, None),
                "carol": ("    return a - b", "    return [add(x, 0) * k for x in xs]")}
    for name, (add_body, scale_body) in students.items():
        path = toy / "submitted" / name / "toy" / "toy.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(submission(toy, add_body, scale_body)))
    done = run("autograde", "toy", "--course", toy, "--timeout", "120")
    assert done.returncode == 0, done.stdout + done.stderr
    scores = {name: json.loads((toy / "autograded" / name / "toy" / "toy-autograde.json").read_text())["score"]
              for name in students}
    assert scores == {"alice": 6, "bob": 0, "carol": 3}  # carol's scale is right: graded with the reference add
    assert "add(2, 3): expected 5, got -1" in (toy / "feedback" / "carol" / "toy" / "toy.html").read_text()
    # add, scale, the written answer `why` (left as released: nbgrader gives it 0), autograded, manual, total,
    # max_total (with the written answer's point), needs_manual_grading, status
    assert "alice,3,3,0,6,0,6,7,no,ok" in (toy / "reports" / "toy" / "grades.csv").read_text().replace("\r", "")
    assert (toy / "reports" / "toy" / "report.html").is_file()
    assert "add" in done.stdout and "scale" in done.stdout and "6/6" in done.stdout


def test_an_unknown_assignment_is_a_clear_error(toy, tmp_path):
    done = run("grade", tmp_path / "x.ipynb", "--assignment", "nope", "--root", toy)
    assert done.returncode == 2
    (tmp_path / "x.ipynb").write_text("{}")
    done = run("grade", tmp_path / "x.ipynb", "--assignment", "nope", "--root", toy)
    assert done.returncode == 2 and "unknown assignment 'nope'" in done.stderr and "toy" in done.stderr
    assert "Traceback" not in done.stderr


def test_grading_the_toy_hides_the_private_files_of_both_courses(toy):
    """A course given with --root: its own private files and those of the course the framework lives in (every
    assignment's graders folder there, whole) are hidden from its submissions."""
    from autograder.assignment.course import Assignment, assignment_ids

    hidden = set(Assignment.load("toy", toy).private_files())
    assert {toy / "solutions", toy / "autograder" / "graders" / "toy" / "reference_values.json",
            COURSE_ROOT / "solutions", COURSE_ROOT / ".git"} <= hidden
    assert {COURSE_ROOT / "autograder" / "graders" / aid for aid in assignment_ids()} <= hidden
    assert toy / "autograder" / "graders" / "toy" not in hidden  # the graders the worker imports
