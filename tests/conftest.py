"""Shared fixtures: the solution notebook's own definitions, loaded once, in the tiny budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dinocourse.notebook import SOLUTION_NOTEBOOK, load_definitions

# the notebook whose definitions the part tests check (another implementation can be checked the same way)
NOTEBOOK = Path(os.environ.get("DINO_TEST_NOTEBOOK", SOLUTION_NOTEBOOK))


@pytest.fixture(scope="session")
def nb(tmp_path_factory):
    """The classes and functions of the solution notebook (its `setup` and `api` cells), as a module."""
    results = tmp_path_factory.mktemp("results")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_definitions(NOTEBOOK, env={"DINO_MODE": "tiny", "DINO_RESULTS": str(results)})


@pytest.fixture
def seeded():
    """Fix torch's global seed for one test."""
    torch.manual_seed(0)
