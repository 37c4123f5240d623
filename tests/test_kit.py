"""Students get no graders: the student download of every assignment holds the released notebook, the data sample
and the runtime package, and no solution, grader, reference value or hidden test; a student can work with it
without the instructor's repository."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile

import pytest

from autograder.assignment.course import Assignment, assignment_ids, cells_by_grade_id, nbgrader_meta, source_of
from autograder.commands.kit import build

pytestmark = pytest.mark.parametrize("assignment_id", assignment_ids())


@pytest.fixture
def kit(assignment_id, tmp_path):
    assignment = Assignment.load(assignment_id)
    archive = build(assignment, tmp_path)
    return assignment, archive, archive.with_suffix("")


def solution_lines(assignment: Assignment) -> set[str]:
    """The lines only the solution has: inside BEGIN/END SOLUTION and HIDDEN TESTS regions."""
    lines, inside = set(), False
    for cell in assignment.solution["cells"]:
        for line in source_of(cell).splitlines():
            if re.search(r"### BEGIN (SOLUTION|HIDDEN TESTS)", line):
                inside = True
            elif re.search(r"### END (SOLUTION|HIDDEN TESTS)", line):
                inside = False
            elif inside and len(line.strip()) > 12:
                lines.add(line.strip())
    return lines


def test_the_kit_holds_the_release_the_data_and_the_runtime_package_only(assignment_id, kit):
    assignment, archive, folder = kit
    names = zipfile.ZipFile(archive).namelist()
    files = {name.split("/", 1)[1] for name in names if not name.endswith("/")}
    assert f"{assignment.id}/{assignment.notebook}" in files
    assert (folder / assignment.id / assignment.notebook).read_bytes() == assignment.release_path.read_bytes()
    assert {"README.md", "pyproject.toml"} <= files and any(f.startswith("data/") for f in files)
    tops = {f.split("/")[0] for f in files}
    assert tops <= {assignment.id, "data", "README.md", "pyproject.toml", "dinocourse"}, tops
    for forbidden in ("autograder", "solutions", "tests", "reference_values.json", "mutants.py", "conftest.py"):
        assert not any(forbidden in f.split("/") for f in files), forbidden
    assert not any(re.fullmatch(r".*/test_\w+\.py", f) for f in files)
    project = (folder / "pyproject.toml").read_text()
    assert "nbgrader" not in project and "pytest" not in project and "torch==" in project


def test_no_solution_line_grader_or_hidden_test_is_in_the_kit(assignment_id, kit):
    assignment, _, folder = kit
    text = "\n".join(p.read_text(errors="ignore") for p in folder.rglob("*") if p.is_file() and p.suffix != ".npz")
    for leak in ("BEGIN SOLUTION", "HIDDEN TESTS", "autograder.check", "import autograder", "from autograder",
                 "Rubric", "Model answer"):
        assert leak not in text, leak
    leaked = [line for line in solution_lines(assignment) if line in text]
    assert not leaked, leaked[:5]
    answers = [source_of(c) for g, c in cells_by_grade_id(assignment.solution).items()
               if nbgrader_meta(c).get("solution") and g in assignment.manual]
    assert not any(a.strip() and a.strip() in text for a in answers)


def test_every_written_question_has_a_model_answer_and_a_rubric_for_instructors_only(assignment_id, kit):
    """Each hand-graded answer of the solution holds a model answer and a rubric whose points add up to the answer's
    points (instructors read them when grading); neither reaches the kit (the test above)."""
    assignment, _, _ = kit
    for grade_id in assignment.manual:
        cell = cells_by_grade_id(assignment.solution)[grade_id]
        text, points = source_of(cell), nbgrader_meta(cell)["points"]
        assert "**Model answer.**" in text and f"**Rubric ({points:g} points).**" in text, grade_id


def test_a_student_works_from_the_kit_alone(assignment_id, kit, tmp_path):
    """The notebook's setup and definition cells run against the kit's own package and data (not the course's)."""
    assignment, _, folder = kit
    nb = json.loads((folder / assignment.id / assignment.notebook).read_text())
    setup = [source_of(c) for c in nb["cells"] if "setup" in c.get("metadata", {}).get("tags", [])]
    script = "\n".join([f"import sys\nsys.path.insert(0, {str(folder)!r})", *setup,
                        "import dinocourse, dinocourse.data as d",
                        f"assert dinocourse.__file__.startswith({str(folder)!r}), dinocourse.__file__",
                        "print(d.default_data_root())"])
    done = subprocess.run([sys.executable, "-c", script], cwd=folder / assignment.id, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith(str(folder / "data"))
