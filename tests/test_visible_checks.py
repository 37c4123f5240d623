"""The visible checks a student runs after each stub (cells tagged ``check-<unit>``) are proven like the graders: every
planted bug of a unit (the assignment's ``mutants.py``) fails a visible check of its unit, unless ``mutants.py`` says
why it cannot (``VISIBLY_UNCAUGHT``); the correct notebook and every correct alternative pass them all."""

from __future__ import annotations

import contextlib
import io
import json
import time

import pytest

from autograder.assignment.course import DEFINITION_TAGS, Assignment, assignment_ids
from autograder.proof.submissions import correct, from_solution, mutants
from autograder.runtime.definitions import load_definitions

CHECKED = [a for a in assignment_ids() if any(t.startswith("check-") for c in Assignment.load(a).solution["cells"]
                                               for t in c.get("metadata", {}).get("tags", []))]


def checks_of(nb: dict) -> dict[str, list[str]]:
    """unit -> the sources of its visible check cells, in notebook order."""
    found: dict[str, list[str]] = {}
    for cell in nb["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("check-"):
                source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
                found.setdefault(tag[len("check-"):], []).append(source)
    return found


def run_checks(nb: dict, unit: str, tmp_path, name: str) -> str | None:
    """Load the notebook's definitions and run the unit's visible checks; None if they pass, else the failure."""
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            module = load_definitions(path, env={"DINO_MODE": "tiny", "DINO_RESULTS": str(tmp_path / "r")},
                                      tags=DEFINITION_TAGS, name=f"visible_{abs(hash(name))}")
            for source in checks_of(nb)[unit]:
                exec(compile(source, f"{name}#check-{unit}", "exec"), module.__dict__)  # noqa: S102
    except Exception as err:  # noqa: BLE001 - any failure of a check is what we look for
        return f"{type(err).__name__}: {err}"
    return None


@pytest.mark.parametrize("assignment_id", CHECKED)
def test_every_graded_unit_has_a_visible_check_and_the_solution_passes_them_quickly(assignment_id, tmp_path):
    assignment = Assignment.load(assignment_id)
    nb = correct(assignment)
    assert set(checks_of(nb)) == set(assignment.units)
    for unit in assignment.units:
        start = time.perf_counter()
        assert run_checks(nb, unit, tmp_path, f"correct-{unit}") is None
        print(f"{unit}: {time.perf_counter() - start:.1f} s (definitions included)")


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", CHECKED)
def test_every_planted_bug_fails_a_visible_check_of_its_unit(assignment_id, tmp_path):
    assignment = Assignment.load(assignment_id)
    module = mutants(assignment)
    excused = getattr(module, "VISIBLY_UNCAUGHT", {})
    missed = {}
    for name, (unit, *edits) in module.MUTANTS.items():
        failure = run_checks(from_solution(assignment, tuple(edits)), unit, tmp_path, name)
        if failure is None and name not in excused:
            missed[name] = f"passes the visible checks of {unit}"
        if failure is not None and name in excused:
            missed[name] = f"is caught ({failure}) but listed in VISIBLY_UNCAUGHT"
    assert not missed, missed
    assert set(excused) <= set(module.MUTANTS)


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", CHECKED)
def test_every_correct_alternative_passes_the_visible_checks_of_its_unit(assignment_id, tmp_path):
    assignment = Assignment.load(assignment_id)
    wrong = {}
    for name, (unit, *edits) in mutants(assignment).ALTERNATIVES.items():
        failure = run_checks(from_solution(assignment, tuple(edits)), unit, tmp_path, name)
        if failure is not None:
            wrong[name] = failure
    assert not wrong, wrong
