"""Scoring, in the trusted process: a submission, the worker's report on each unit and facts about the run in, the
:class:`~autograder.grading.verdict.Verdict` out. Pure functions: nothing here runs a submission.

A visible test cell earns its points when the instructor's code of that cell passed in the student's program; a
hidden one when every check of the unit's graders passed. A unit's status is the first of
:data:`~autograder.grading.verdict.SEVERITY` that applies; a unit that is not ``ok`` scores zero and says why.
"""

from __future__ import annotations

import copy

from autograder.assignment import submission
from autograder.assignment.course import Assignment, cells_by_grade_id
from autograder.grading.verdict import SEVERITY, Status, TestResult, UnitResult, UnitRun, Verdict


def _owned(entries: list, unit: str) -> list[str]:
    """Texts of [owner, text] entries that concern ``unit`` (its own, or no unit's, since every unit ran that)."""
    return [text for owner, text in entries if owner in (unit, None)]


def _add(target: list, texts) -> None:
    for text in texts:
        if text not in target:
            target.append(text)


def _not_run_status(run: UnitRun | None, facts: dict) -> tuple[Status, str]:
    """The status of a unit whose process gave no report (the job ended, or the unit was abandoned)."""
    if facts.get("timed_out") or (run is not None and run.abandoned):
        return Status.TIMEOUT, "not graded: the submission used up its time limit before this part"
    if facts.get("out_of_memory"):
        return Status.MEMORY, "not graded: the submission ran out of memory before this part"
    return Status.CRASHED, "not graded: the grading process was ended before this part (did your code end it?)"


def unit_status(unit: str, run: UnitRun | None, problem: dict | None, facts: dict) -> tuple[Status, str]:
    """The status of one unit and, when it is not ok, what the student is told (the first that applies)."""
    tampered = _owned(run.tampered if run else [], unit)
    if tampered:
        return Status.TAMPERED, "not scored: " + "; ".join(tampered)
    if problem is not None:  # a cell of the program that took the unit's process down (skipped)
        return Status(problem["kind"]), problem["message"]
    if facts.get("startup_error"):
        return Status.CRASHED, "not graded: the grading process could not start; your instructor has the details"
    if run is None or run.abandoned:
        return _not_run_status(run, facts)
    if run.internal_error:
        return Status.CRASHED, "the grader failed on this part; your instructor has the details"
    forked = any("os.fork" in text for text in _owned(run.notices, unit))
    if run.too_many_processes and forked or run.killed == "processes" and run.results is None:
        return Status.CRASHED, "your code for this part started too many processes (the limit stopped it)"
    if run.memory_exhausted or run.results is None and run.out_of_memory:
        limit = "?" if run.memory_mb is None else run.memory_mb
        return Status.MEMORY, f"your code for this part used more memory than allowed ({limit} MB) and was stopped"
    if run.killed == "time":
        return Status.TIMEOUT, f"your code for this part did not finish within {run.limit:.0f} s"
    if run.results is None:
        return Status.CRASHED, f"your code ended the grading of this part (exit code {run.exit_code}); " \
                               "no check could be scored"
    if run.memory_error:
        return Status.MEMORY, "your code for this part ran out of memory (an allocation failed)"
    return Status.OK, ""


def _cell_errors(runs: dict[str, UnitRun]) -> dict:
    """The first error of each cell of the program (by its position), from whichever unit ran it first."""
    found: dict = {}
    for run in runs.values():
        for error in run.cell_errors:
            found.setdefault(error["pos"], error)
    return found


def _unit_result(verdict: Verdict, unit: str, part: str, found: submission.Submission, run: UnitRun | None,
                 problem: dict | None, facts: dict, cell_errors: dict) -> UnitResult:
    """One unit's result; adds what its process reported (tampering, notices, internal errors) to ``verdict``."""
    if found.status:
        status, why, checks = Status(found.status), "; ".join(found.problems), []
    else:
        status, why = unit_status(unit, run, problem, facts)
        checks = (run.results or []) if run and status in (Status.OK, Status.TAMPERED) else []
        _add(verdict.tampering, _owned(run.tampered if run else [], unit))
        _add(verdict.notices, [text for _, text in (run.notices if run else [])])
        if run and run.internal_error:
            verdict.internal_errors = {**(verdict.internal_errors or {}), unit: run.internal_error}
    errors = [e["message"] for e in cell_errors.values() if e["unit"] == unit]
    return UnitResult(part=part, status=status, message=why, checks=checks, cell_error=errors[0] if errors else "",
                      seconds=run.seconds if run else None, visible=run.visible if run else {})


def _test_result(grade_id: str, test, info: UnitResult, unscored: bool) -> TestResult:
    """One test cell's points (``unscored``: the submission could not be graded at all)."""
    error = info.cell_error
    own_error = ("your cell raised " + error.removeprefix("your code raised ") if error.startswith("your code")
                 else f"running your cell: {error}") + "\n" if error else ""
    if test.kind == "visible":
        outcome = info.visible.get(grade_id)
        passed = bool(outcome and outcome["passed"]) and info.status != Status.TAMPERED and not unscored
        message = "" if passed else (info.message if info.status != Status.OK or not outcome else
                                     outcome["message"])
        message = message or "the visible test did not run"
    else:
        passed = info.status == Status.OK and bool(info.checks) and all(c["passed"] for c in info.checks)
        failed = [c for c in info.checks if not c["passed"]]
        message = "" if passed else (info.message or "\n".join(f"{c['name']}: {c['message']}" for c in failed)
                                     or "no check ran")
    return TestResult(unit=test.unit, kind=test.kind, points=test.points if passed else 0.0,
                      max_points=test.points, passed=passed, message="" if passed else own_error + message)


def _status(found: submission.Submission, verdict: Verdict) -> Status:
    """The submission's status: its own (nothing could be run), tampered, else the most severe of its units'."""
    if found.status:
        return Status(found.status)
    if verdict.tampering:
        return Status.TAMPERED
    statuses = {info.status for info in verdict.units.values()}
    return next(s for s in SEVERITY if s in statuses or s == Status.OK)


def score(assignment: Assignment, found: submission.Submission, runs: dict[str, UnitRun], facts: dict) -> Verdict:
    """The verdict: status, points per test cell, per-unit checks and what the student should read."""
    verdict = Verdict(assignment=assignment.id, sha256=found.sha256, grader=assignment.fingerprint,
                      problems=list(found.problems), tampering=list(found.tampering), cells=found.cells,
                      answers=found.answers)
    problems = {p["pos"]: p for p in facts.get("problems", [])}
    by_unit = {p["unit"]: p for p in problems.values() if p.get("unit")}
    _add(verdict.notices, [p["message"] for p in problems.values() if not p.get("unit")])
    cell_errors = _cell_errors(runs)
    _add(verdict.notices, [f"{e['label']} raised {e['message'].removeprefix('your code raised ')} (the rest of "
                           "the notebook ran on, as in a kernel)" for e in cell_errors.values() if not e["unit"]])
    for unit, part in assignment.units.items():
        verdict.units[unit] = _unit_result(verdict, unit, part, found, runs.get(unit), by_unit.get(unit), facts,
                                           cell_errors)
    for grade_id, test in assignment.tests.items():
        verdict.tests[grade_id] = _test_result(grade_id, test, verdict.units[test.unit], bool(found.status))
    verdict.status = _status(found, verdict)
    verdict.score = sum(t.points for t in verdict.tests.values())
    verdict.max_score = assignment.max_score
    verdict.manual_max = sum(assignment.manual.values())
    verdict.run = {k: v for k, v in facts.items() if k not in ("stderr", "problems")}
    if facts.get("stderr") and (not facts.get("finished") or verdict.internal_errors):
        verdict.run["stderr"] = facts["stderr"]
    return verdict


def staged_notebook(assignment: Assignment, verdict: Verdict) -> dict:
    """The released notebook with the student's own solution cells and answers (what the gradebook records)."""
    nb = copy.deepcopy(assignment.release)
    sources = {**{u: c for u, c in verdict.cells.items() if c is not None}, **verdict.answers}
    for grade_id, cell in cells_by_grade_id(nb).items():
        if grade_id in sources:
            cell["source"] = sources[grade_id]
    return nb
