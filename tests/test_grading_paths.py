"""One engine: every way of grading gives every notebook of the corpus (each example submission, each planted bug,
each correct alternative) the same points per test cell, and a visible test cell's points mean exactly that its code
passes when the student runs the notebook in a kernel."""

from __future__ import annotations

import os

import pytest
from corpus import points_per_test, slug

from autograder.assignment import submission
from autograder.assignment.course import assignment_ids
from autograder.proof.submissions import mutants

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("assignment", assignment_ids(), indirect=True)]


def test_class_grade_and_plain_nbgrader_give_every_notebook_the_same_points(assignment, cross_path, graded_class,
                                                                          graded_cli, graded_nbgrader):
    _, by_class = graded_class
    differences = {}
    for entry in cross_path:
        paths = {"autograde": points_per_test(by_class[entry.name]),
                 "grade": points_per_test(graded_cli[entry.name]),
                 "nbgrader": graded_nbgrader[entry.name]}
        if not paths["autograde"] == paths["grade"] == paths["nbgrader"]:
            differences[entry.name] = {path: {g: p for g, p in points.items() if p != paths["autograde"].get(g)}
                                       or "same" for path, points in paths.items()}
    assert not differences, differences
    if "ex-monkeypatch" in graded_nbgrader:  # the grader patched from the notebook: nbgrader's path gives 0 too
        assert sum(graded_nbgrader["ex-monkeypatch"].values()) == 0


def test_the_grade_command_reports_status_and_score_of_each_notebook(cross_path, graded_class, graded_cli):
    _, by_class = graded_class
    for entry in cross_path:
        got = graded_cli[entry.name]
        assert (got["status"], got["score"]) == (by_class[entry.name]["status"], by_class[entry.name]["score"]), \
            entry.name


def _kernel_verdicts(assignment, notebooks: dict) -> dict[str, dict[str, bool]]:
    """Run each notebook's program in one real IPython kernel (``%reset -f`` between notebooks), as a student's
    "Run all" would (without the given experiments); a visible test cell passes when it raises nothing."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, **assignment.environment(),
                                                           "MPLBACKEND": "Agg"})
    verdicts = {}
    try:
        for name, path in notebooks.items():
            kc.execute_interactive("%reset -f", timeout=60, output_hook=lambda msg: None)
            found = submission.inspect(path.read_bytes(), assignment)
            verdicts[name] = {}
            for cell in found.program:
                reply = kc.execute_interactive(cell["source"], timeout=300, output_hook=lambda msg: None)
                if cell["kind"] == "visible":
                    verdicts[name][cell["grade_id"]] = reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return verdicts


def test_a_visible_test_earns_its_points_exactly_when_its_code_passes_in_a_kernel(assignment, cross_path,
                                                                                  corpus_files, graded_class):
    """Over every example that a kernel can run to its end, and a planted bug and a correct alternative per unit."""
    from autograder.proof.submissions import examples

    catalog = examples(assignment).EXAMPLES
    runnable = {e.name: corpus_files[1][e.name] for e in cross_path
                if e.kind != "example" or (e.status in ("ok", "tampered") and not catalog[e.case].hostile)}
    kernel = _kernel_verdicts(assignment, runnable)
    _, by_class = graded_class
    visible = [g for g, t in assignment.tests.items() if t.kind == "visible"]
    disagree = {}
    for name in runnable:
        engine = {g: by_class[name]["tests"][g]["passed"] for g in visible}
        if engine != kernel[name]:
            disagree[name] = {"engine": engine, "kernel": kernel[name]}
    assert not disagree, disagree
    caught = [n for n in runnable if not all(kernel[n].values())]
    visibly_caught = f"mut-{slug(mutants(assignment).VISIBLY_CAUGHT)}"  # named in the assignment's mutants.py
    assert visibly_caught in caught, f"the visible tests must catch the planted bug {visibly_caught}"
