"""In-kernel feedback: ``autograder.check(unit)`` in a hidden test cell of an instructor's notebook.

It grades the unit against the kernel's live definitions with the same :func:`autograder.runtime.runner.grade_unit` the
engine uses, prints one line per check and raises :class:`~autograder.runtime.runner.GradingFailure` (shown as the
report alone) when a check fails. It is feedback for the notebook's own run; grades come from the engine only.
"""

from __future__ import annotations

from autograder.assignment.course import Assignment, CourseError, assignment_ids
from autograder.runtime.definitions import reference
from autograder.runtime.runner import GradingFailure, format_report, grade_unit


def assignment_of(unit: str, assignment: str | None = None) -> Assignment:
    """The assignment that has ``unit`` (or the one named)."""
    if assignment is not None:
        return Assignment.load(assignment)
    found = [a for a in map(Assignment.load, assignment_ids()) if unit in a.units]
    if len(found) != 1:
        raise CourseError(f"unit {unit!r} belongs to {len(found)} assignments "
                          f"({', '.join(a.id for a in found) or 'none'}); pass assignment=...")
    return found[0]


def check(unit: str, names: dict, assignment: str | None = None) -> None:
    course = assignment_of(unit, assignment)
    results = grade_unit(unit, names, reference=reference(course), graders=course.graders_dir,
                         part=course.units[unit], values=course.values.get(unit, {}))
    report = format_report(unit, course.units[unit], results)
    if any(not r.passed for r in results):
        raise GradingFailure(report)
    print(report)
