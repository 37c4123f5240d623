"""Fixtures of the graders.

From the command line the graders check one notebook, unit by unit, each unit's cell run on top of the reference
solution's definitions::

    pytest autograder/graders                         # the solution itself
    pytest autograder/graders --notebook PATH.ipynb   # a submission (or set DINO_GRADE_NOTEBOOK)

Inside a notebook's test cell, :func:`autograder.check` runs them against the live objects of the kernel instead
(through a plugin with a ``live_namespace`` method).
"""

from __future__ import annotations

import os

import pytest
import torch

from autograder.cases import load_values
from autograder.units import notebook_namespace
from dinocourse.notebook import SOLUTION_NOTEBOOK


def pytest_addoption(parser):
    parser.addoption("--notebook", default=None,
                     help="notebook whose units the graders check (default: $DINO_GRADE_NOTEBOOK, else the solution)")


@pytest.fixture(scope="module")
def ns(request):
    """The names the unit's graders use: the unit's own definitions, the reference's for everything else."""
    unit = request.module.UNIT
    for plugin in request.config.pluginmanager.get_plugins():
        if hasattr(plugin, "live_namespace"):
            return plugin.live_namespace(unit)
    path = request.config.getoption("--notebook") or os.environ.get("DINO_GRADE_NOTEBOOK") or SOLUTION_NOTEBOOK
    return notebook_namespace(path, unit)


@pytest.fixture(scope="session")
def values():
    """The reference values generated from the solution (``reference_values.json``)."""
    return load_values()


@pytest.fixture(autouse=True)
def fixed_seed():
    """Every check starts from the same random state, whatever the notebook did before."""
    torch.manual_seed(0)
