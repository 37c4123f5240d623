"""An assignment is a folder: the grading framework names no assignment, no unit and no setting of an assignment,
and each assignment's files live in their own places."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.assignment.course import COURSE_ROOT, Assignment, assignment_ids

FRAMEWORK = sorted(p for p in (COURSE_ROOT / "autograder").rglob("*.py") if "graders" not in p.parts)
FRAMEWORK += [COURSE_ROOT / "nbgrader_config.py"]


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


def test_the_rerun_fingerprint_covers_everything_that_can_change_a_grade(tmp_path):
    """Engine code, runtime package, graders, solution and release, and the versions of torch and friends."""
    import shutil

    from autograder.assignment.course import versions

    dino = Assignment.load("01_dino")
    files = {p.relative_to(COURSE_ROOT).as_posix() for p in dino.fingerprint_files()}
    for needed in ("autograder/grading/engine.py", "autograder/worker/process.py", "autograder/runtime/runner.py",
                   "autograder/sandbox/isolation.py",
                   "dinocourse/data.py", "autograder/graders/01_dino/test_dino_loss.py",
                   "autograder/graders/01_dino/cases.py", "autograder/graders/01_dino/reference_values.json",
                   "solutions/01_dino/dino.ipynb", "assignments/01_dino/dino.ipynb"):
        assert needed in files, needed
    assert any(v.startswith("torch==") for v in versions()) and any(v.startswith("python==") for v in versions())
    root = tmp_path / "course"  # a copy of the course: change one file of each kind, the fingerprint changes
    for folder in ("solutions", "assignments", "dinocourse", "autograder/graders/01_dino"):
        shutil.copytree(COURSE_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = Assignment.load("01_dino", root).fingerprint
    seen = {before}
    for changed in ("dinocourse/data.py", "assignments/01_dino/dino.ipynb", "autograder/graders/01_dino/cases.py"):
        with (root / changed).open("a") as handle:
            handle.write("\n")
        seen.add(Assignment.load("01_dino", root).fingerprint)
    assert len(seen) == 4
