"""Shared fixtures: the solution notebook's own definitions, loaded once, in the tiny budget."""

from __future__ import annotations

import pytest
import torch

from dinocourse.notebook import SOLUTION_NOTEBOOK, load_definitions


@pytest.fixture(scope="session")
def nb(tmp_path_factory):
    """The classes and functions of the solution notebook (its `setup` and `api` cells), as a module."""
    results = tmp_path_factory.mktemp("results")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_definitions(SOLUTION_NOTEBOOK, env={"DINO_MODE": "tiny", "DINO_RESULTS": str(results)})
