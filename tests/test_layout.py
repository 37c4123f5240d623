"""An assignment is a folder: the grading framework names no assignment, no unit and no setting of an assignment,
and each assignment's files live in their own places."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.course import COURSE_ROOT, Assignment, assignment_ids

FRAMEWORK = sorted((COURSE_ROOT / "autograder").glob("*.py")) + [COURSE_ROOT / "nbgrader_config.py"]


@pytest.mark.parametrize("assignment_id", assignment_ids())
def test_no_framework_module_names_an_assignment_its_units_or_its_settings(assignment_id):
    assignment = Assignment.load(assignment_id)
    words = {assignment_id, assignment.notebook, *assignment.units, *assignment.tests,
             *assignment.settings.get("env", {})}
    offenders = [f"{path.name}: {word}" for path in FRAMEWORK for word in words if word in path.read_text()]
    assert not offenders, offenders


@pytest.mark.parametrize("assignment_id", assignment_ids())
def test_an_assignments_files_live_in_its_own_places(assignment_id):
    assignment = Assignment.load(assignment_id)
    assert assignment.solution_path == COURSE_ROOT / "solutions" / assignment_id / assignment.notebook
    assert assignment.release_path.is_file()
    graders = assignment.graders_dir
    assert graders == COURSE_ROOT / "autograder" / "graders" / assignment_id
    for name in ("cases.py", "reference_values.json", "examples.py", "mutants.py", "__init__.py"):
        assert (graders / name).is_file(), name
    assert {p.stem[len("test_"):] for p in graders.glob("test_*.py")} == set(assignment.units)


def test_the_framework_reads_units_points_and_parts_from_the_solutions_metadata():
    for assignment_id in assignment_ids():
        assignment = Assignment.load(assignment_id)
        assert assignment.units and all(part for part in assignment.units.values())
        assert assignment.max_score == sum(t.points for t in assignment.tests.values()) > 0
        assert all(Path(assignment.graders_dir / f"test_{t.unit}.py").is_file() for t in assignment.tests.values())
