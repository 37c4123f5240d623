"""Shared fixtures: Assignment 1's solution notebook's own definitions, loaded once, in the tiny budget; and the
corpus of an assignment (Assignment 1 unless a test parametrizes ``assignment`` indirectly) graded every way."""

from __future__ import annotations

import pytest
import torch

from autograder.assignment.course import Assignment
from autograder.runtime.definitions import load_definitions


@pytest.fixture(scope="session")
def dino():
    return Assignment.load("01_dino")


@pytest.fixture(scope="session")
def nb(tmp_path_factory, dino):
    """The classes and functions of the solution notebook (its `setup` and `api` cells), as a module."""
    results = tmp_path_factory.mktemp("results")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_definitions(dino.solution_path, env={"DINO_MODE": "tiny", "DINO_RESULTS": str(results)})


# ---- the corpus graded through every path (once per session; used by the slow grading tests) ----------------------
@pytest.fixture(scope="session")
def assignment(request):
    """Assignment 1, or the assignment a test names with ``@pytest.mark.parametrize("assignment", ids,
    indirect=True)``."""
    return Assignment.load(getattr(request, "param", "01_dino"))


@pytest.fixture(scope="session")
def corpus(assignment):
    from corpus import entries

    return entries(assignment)


@pytest.fixture(scope="session")
def corpus_files(assignment, corpus, tmp_path_factory):
    from corpus import write

    course = tmp_path_factory.mktemp("corpus")
    return course, write(assignment, course, corpus)


@pytest.fixture(scope="session")
def graded_class(assignment, corpus_files, tmp_path_factory):
    """Verdicts of ``python -m autograder autograde`` over the corpus, plus a student folder without a notebook."""
    import shutil

    from corpus import grade_class

    course = tmp_path_factory.mktemp("class")
    shutil.copytree(corpus_files[0] / "submitted", course / "submitted")
    (course / "submitted" / "absent" / assignment.id).mkdir(parents=True)
    return course, grade_class(assignment, course)


@pytest.fixture(scope="session")
def cross_path(corpus):
    """What the other grading paths grade (the class path grades the whole corpus): every example, and the first
    planted bug and the first correct alternative of each unit; the engine is the same code for all of them."""
    from corpus import cross_path_sample

    return cross_path_sample(corpus)


@pytest.fixture(scope="session")
def graded_cli(assignment, corpus_files, cross_path, tmp_path_factory):
    from corpus import grade_cli

    paths = {e.name: corpus_files[1][e.name] for e in cross_path}
    return grade_cli(assignment, paths, tmp_path_factory.mktemp("cli") / "grades.json")


@pytest.fixture(scope="session")
def graded_nbgrader(assignment, corpus_files, cross_path, tmp_path_factory):
    import shutil

    from corpus import grade_nbgrader

    course = tmp_path_factory.mktemp("nbgrader")
    for entry in cross_path:
        shutil.copytree(corpus_files[0] / "submitted" / entry.name, course / "submitted" / entry.name)
    return grade_nbgrader(assignment, course)
