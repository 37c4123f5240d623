"""``pytest autograder/graders`` checks every assignment's reference solution with its own graders (``make test``).

Every check of every unit must pass on the solution. In a grading process (and for in-kernel feedback) the graders
run without this file: :func:`autograder.runtime.runner.grade_unit` hands them the namespace to grade instead.
"""

from __future__ import annotations

from pathlib import Path

from autograder.assignment.course import Assignment
from autograder.runtime.definitions import Namespace, reference
from autograder.runtime.fixtures import fixed_seed, ns, solution, values  # noqa: F401 - the graders' fixtures
from autograder.runtime.runner import GraderPlugin


class SolutionSelfTest(GraderPlugin):
    """The reference solution of the module's assignment is the namespace graded."""

    def context(self, path: Path):
        folder = Path(path).parent
        assignment = Assignment.load(folder.name, folder.parents[2])
        unit = Path(path).stem[len("test_"):]
        ref = reference(assignment)
        return Namespace(vars(ref.module), unit, assignment.units[unit]), assignment.values[unit], ref


def pytest_configure(config):
    config.pluginmanager.register(SolutionSelfTest(), "solution-self-test")
