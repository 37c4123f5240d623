"""The graders are proven: every planted bug (an assignment's ``mutants.py``) is caught by its own unit and costs no
other unit a point, and every correct alternative gets full marks, graded by the engine as a class would be (the
same runs are compared with the other grading paths in test_grading_paths.py)."""

from __future__ import annotations

import pytest
from corpus import unit_points

from autograder.assignment.course import Assignment, assignment_ids
from autograder.proof.submissions import mutants

IDS = assignment_ids()


@pytest.mark.slow
@pytest.mark.parametrize("assignment", IDS, indirect=True)
def test_every_planted_bug_costs_its_own_unit_and_no_other(assignment, corpus, graded_class):
    _, by_class = graded_class
    full = unit_points(by_class["ex-correct"])
    problems = {}
    for entry in (e for e in corpus if e.kind == "mutant"):
        verdict = by_class[entry.name]
        points = unit_points(verdict)
        if points[entry.unit] >= full[entry.unit]:
            problems[entry.case] = f"not caught by the graders of {entry.unit}"
        elif any(points[u] != full[u] for u in assignment.units if u != entry.unit):
            problems[entry.case] = f"also cost other units points: {points}"
        failed = [t["message"] for t in verdict["tests"].values() if not t["passed"]]
        if not all(message and "Traceback" not in message for message in failed):
            problems[entry.case] = f"a failure without a clear message: {failed}"
    assert not problems, problems


@pytest.mark.slow
@pytest.mark.parametrize("assignment", IDS, indirect=True)
def test_every_correct_alternative_gets_full_marks(assignment, corpus, graded_class):
    _, by_class = graded_class
    wrong = {e.case: {g: t["message"] for g, t in by_class[e.name]["tests"].items() if not t["passed"]}
             for e in corpus if e.kind == "alternative" and by_class[e.name]["score"] != assignment.max_score}
    assert not wrong, wrong


@pytest.mark.parametrize("assignment_id", IDS)
def test_every_unit_has_planted_bugs_and_the_suite_is_large_enough(assignment_id):
    assignment = Assignment.load(assignment_id)
    module = mutants(assignment)
    assert {case[0] for case in module.MUTANTS.values()} == set(assignment.units)
    assert len(module.MUTANTS) >= 15 and len(module.ALTERNATIVES) >= 5
    assert {case[0] for case in module.ALTERNATIVES.values()} <= set(assignment.units)
    assert module.VISIBLY_CAUGHT in module.MUTANTS  # a planted bug the visible tests must catch (test_grading_paths)
