"""The fixtures every grader may use. What they hold comes from the
:class:`autograder.runtime.runner.GraderPlugin` of the run: the student's namespace in a grading process, the
reference solution in ``pytest autograder/graders``."""

from __future__ import annotations

import pytest
import torch


def _context(request):
    for plugin in request.config.pluginmanager.get_plugins():
        if hasattr(plugin, "context") and hasattr(plugin, "pytest_pycollect_makemodule"):
            return plugin.context(request.path)
    raise RuntimeError("the graders run only through autograder.runtime.runner.grade_unit or pytest autograder/graders")


@pytest.fixture(scope="module")
def ns(request):
    """The names the unit's graders use: the unit's own definitions, the reference's for everything else."""
    return _context(request)[0]


@pytest.fixture(scope="module")
def values(request):
    """The unit's reference values, generated from the solution (``reference_values.json``)."""
    return _context(request)[1]


@pytest.fixture(scope="module")
def solution(request):
    """The reference definitions (in a grading process the graded unit itself is the released stub)."""
    return _context(request)[2].module


@pytest.fixture(autouse=True)
def fixed_seed():
    """Every check starts from the same random state, whatever the notebook did before."""
    torch.manual_seed(0)
