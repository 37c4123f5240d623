"""Scoring without a sandbox: hand-made worker reports in, the verdict out (fast tables; nothing is run)."""

from __future__ import annotations

import json

import pytest

from autograder.assignment.submission import inspect
from autograder.grading.scoring import score, unit_status
from autograder.grading.verdict import SEVERITY, Status, TestResult, UnitResult, UnitRun, Verdict
from autograder.proof.submissions import correct

PASS = [{"name": "a check", "passed": True, "message": ""}]
FAIL = [{"name": "a check", "passed": True, "message": ""}, {"name": "the shape", "passed": False,
                                                              "message": "expected (2, 3), got (3, 2)"}]


def run(**kw) -> UnitRun:
    return UnitRun("u", **kw)


# (case, the unit's report, the cell that took its process down, facts about the job) -> status, words of the message
STATUS_CASES = [
    ("ok", run(results=PASS), None, {}, Status.OK, ""),
    ("ok without checks", run(results=[]), None, {}, Status.OK, ""),
    ("tampered", run(results=PASS, tampered=[["u", "read the gradebook"]]), None, {}, Status.TAMPERED,
     "read the gradebook"),
    ("tampered by code of no unit", run(results=PASS, tampered=[[None, "patched pytest"]]), None, {},
     Status.TAMPERED, "patched pytest"),
    ("another unit's tampering", run(results=PASS, tampered=[["v", "read the gradebook"]]), None, {}, Status.OK, ""),
    ("tampered before memory", run(tampered=[["u", "x"]], memory_exhausted=True, out_of_memory=True), None, {},
     Status.TAMPERED, "not scored"),
    ("tampered before a skipped cell", run(results=PASS, tampered=[["u", "x"]]),
     {"kind": "memory", "message": "cell 3 used more memory"}, {}, Status.TAMPERED, "not scored"),
    ("a skipped cell", run(results=PASS), {"kind": "timeout", "message": "cell 3 ran too long"}, {},
     Status.TIMEOUT, "cell 3 ran too long"),
    ("startup error", None, None, {"startup_error": "boom"}, Status.CRASHED, "could not start"),
    ("startup error before a timed-out job", None, None, {"startup_error": "boom", "timed_out": True},
     Status.CRASHED, "could not start"),
    ("no report, job timed out", None, None, {"timed_out": True, "out_of_memory": True}, Status.TIMEOUT,
     "time limit"),
    ("no report, job out of memory", None, None, {"out_of_memory": True}, Status.MEMORY, "out of memory"),
    ("no report", None, None, {}, Status.CRASHED, "ended before this part"),
    ("abandoned", run(abandoned=True), None, {"out_of_memory": True}, Status.TIMEOUT, "time limit"),
    ("internal error", run(results=PASS, internal_error="Traceback"), None, {}, Status.CRASHED,
     "the grader failed"),
    ("internal error before memory", run(internal_error="Traceback", memory_exhausted=True), None, {},
     Status.CRASHED, "the grader failed"),
    ("killed for processes", run(killed="processes"), None, {}, Status.CRASHED, "too many processes"),
    ("killed for processes with results", run(killed="processes", results=PASS), None, {}, Status.OK, ""),
    ("forked too often", run(results=PASS, too_many_processes=True, notices=[["u", "called os.fork"]]), None, {},
     Status.CRASHED, "too many processes"),
    ("process limit hit, no fork of its own", run(results=PASS, too_many_processes=True,
                                                  notices=[["v", "called os.fork"]]), None, {}, Status.OK, ""),
    ("processes before memory", run(killed="processes", memory_exhausted=True), None, {}, Status.CRASHED,
     "too many processes"),
    ("killed for memory", run(memory_exhausted=True, memory_mb=512, results=PASS), None, {}, Status.MEMORY,
     "(512 MB)"),
    ("out of memory without results", run(out_of_memory=True), None, {}, Status.MEMORY, "(? MB)"),
    ("out of memory with results", run(out_of_memory=True, results=PASS), None, {}, Status.OK, ""),
    ("memory before timeout", run(memory_exhausted=True, killed="time", limit=30.0), None, {}, Status.MEMORY,
     "more memory"),
    ("killed for time", run(killed="time", limit=30.4, results=PASS), None, {}, Status.TIMEOUT, "within 30 s"),
    ("timeout before crashed", run(killed="time", limit=30.0, exit_code=-9), None, {}, Status.TIMEOUT,
     "within 30 s"),
    ("no results", run(exit_code=3), None, {}, Status.CRASHED, "exit code 3"),
    ("crashed before a failed allocation", run(exit_code=1, memory_error=True), None, {}, Status.CRASHED,
     "exit code 1"),
    ("a failed allocation", run(results=PASS, memory_error=True), None, {}, Status.MEMORY, "allocation failed"),
]


@pytest.mark.parametrize(("unit_run", "problem", "facts", "status", "words"),
                         [case[1:] for case in STATUS_CASES], ids=[case[0] for case in STATUS_CASES])
def test_a_units_status_is_the_first_that_applies(unit_run, problem, facts, status, words):
    got, message = unit_status("u", unit_run, problem, facts)
    assert got is status
    assert words in message and (message == "") == (status is Status.OK)


def test_the_statuses_and_their_order():
    assert [str(s) for s in SEVERITY] == ["tampered", "memory", "timeout", "crashed", "ok"]
    assert {str(s) for s in Status} == {*map(str, SEVERITY), "invalid-notebook", "missing", "not-graded",
                                        "not-recorded"}
    assert all(s.meaning for s in Status) and Status("not-graded") is Status.NOT_GRADED


def test_the_worker_event_is_read_by_name():
    event = {"event": "unit", "unit": "u", "seconds": 1.5, "exit_code": 0, "killed": None, "phase": "checks",
             "peak_mb": 12, "results": PASS, "visible": {"t": {"passed": True, "message": ""}}}
    got = UnitRun.from_event(event)
    assert (got.unit, got.seconds, got.results, got.killed, got.visible) == ("u", 1.5, PASS, None, event["visible"])
    assert UnitRun.from_event({"event": "unit", "unit": "u", "abandoned": True}).results is None


# ---------------------------------------------------------------------------------------------------- a verdict
@pytest.fixture(scope="module")
def found(dino):
    return inspect(json.dumps(correct(dino)).encode(), dino)


def reports(dino, visible=True, checks=PASS, **edits) -> dict[str, UnitRun]:
    """A report for every unit (every check and visible test passing), with ``edits``: unit -> UnitRun fields."""
    runs = {}
    for unit in dino.units:
        shown = {g: {"passed": visible, "message": "" if visible else "your visible test failed"}
                 for g, t in dino.tests.items() if t.unit == unit and t.kind == "visible"}
        runs[unit] = UnitRun(unit, results=checks, visible=shown, seconds=0.5)
        for key, value in edits.get(unit, {}).items():
            setattr(runs[unit], key, value)
    return runs


def points(verdict: Verdict) -> dict[str, float]:
    return {g: t.points for g, t in verdict.tests.items()}


def test_every_check_passing_earns_full_marks(dino, found):
    verdict = score(dino, found, reports(dino), {"finished": True, "seconds": 3.0})
    assert verdict.status is Status.OK and verdict.score == dino.max_score == 16
    assert all(t.passed and t.points == t.max_points and not t.message for t in verdict.tests.values())
    assert verdict.manual_max == 6 and verdict.run == {"finished": True, "seconds": 3.0}
    assert {u: info.status for u, info in verdict.units.items()} == dict.fromkeys(dino.units, Status.OK)


def test_a_visible_test_earns_its_points_iff_its_code_passed(dino, found):
    verdict = score(dino, found, reports(dino, visible=False), {"finished": True})
    visible = {g for g, t in dino.tests.items() if t.kind == "visible"}
    assert visible and all(verdict.tests[g].points == 0 and "your visible test failed" in verdict.tests[g].message
                           for g in visible)
    assert verdict.score == sum(t.points for g, t in dino.tests.items() if g not in visible)
    assert verdict.status is Status.OK


def test_a_hidden_test_earns_its_points_iff_every_check_passed_and_the_unit_is_ok(dino, found):
    failing = score(dino, found, reports(dino, checks=FAIL), {"finished": True})
    hidden = [g for g, t in dino.tests.items() if t.kind == "hidden"]
    assert all(failing.tests[g].points == 0 and "the shape: expected (2, 3)" in failing.tests[g].message
               for g in hidden)
    assert failing.score == sum(t.points for t in dino.tests.values() if t.kind == "visible")
    empty = score(dino, found, reports(dino, checks=[]), {"finished": True})
    assert all(empty.tests[g].points == 0 and empty.tests[g].message == "no check ran" for g in hidden)
    # the unit ran out of memory: its hidden test earns nothing although its checks passed; its visible test counts
    memory = score(dino, found, reports(dino, dino_head={"memory_error": True}), {"finished": True})
    assert memory.status is Status.MEMORY and memory.units["dino_head"].status is Status.MEMORY
    assert memory.units["dino_head"].checks == []
    assert points(memory)["test_dino_head_hidden"] == 0 and points(memory)["test_dino_head_visible"] == 1
    assert memory.score == dino.max_score - 2


def test_a_tampered_unit_earns_nothing_not_even_its_visible_test(dino, found):
    verdict = score(dino, found, reports(dino, dino_loss={"tampered": [["dino_loss", "patched a grader"]]}),
                    {"finished": True})
    assert verdict.status is Status.TAMPERED and verdict.tampering == ["patched a grader"]
    assert points(verdict)["test_dino_loss_visible"] == points(verdict)["test_dino_loss_hidden"] == 0
    assert verdict.units["dino_loss"].checks == PASS  # kept, to show what ran
    assert verdict.score == dino.max_score - 4


def test_a_submission_that_edited_a_test_cell_is_tampered_but_keeps_its_points(dino, found):
    edited = inspect(json.dumps(correct(dino)).encode(), dino)
    edited.tampering = ["the test cell test_dino_head_visible was edited"]
    verdict = score(dino, edited, reports(dino), {"finished": True})
    assert verdict.status is Status.TAMPERED and verdict.score == dino.max_score


@pytest.mark.parametrize(("raw", "status"), [(None, Status.MISSING), (b"not a notebook", Status.INVALID_NOTEBOOK)])
def test_the_submissions_own_status_wins_and_scores_nothing(dino, raw, status):
    nothing = inspect(raw, dino)
    verdict = score(dino, nothing, reports(dino), {"finished": True})  # reports that would pass are ignored
    assert verdict.status is status and verdict.score == 0
    assert {info.status for info in verdict.units.values()} == {status}
    assert all(not t.passed and t.message for t in verdict.tests.values())


@pytest.mark.parametrize(("unit_statuses", "expected"), [
    ({"dino_head": "memory", "dino_loss": "timeout", "schedules": "crashed"}, Status.MEMORY),
    ({"dino_loss": "timeout", "schedules": "crashed"}, Status.TIMEOUT),
    ({"schedules": "crashed"}, Status.CRASHED),
    ({}, Status.OK),
])
def test_the_verdicts_status_is_its_most_severe_units(dino, found, unit_statuses, expected):
    facts = {"finished": True, "problems": [{"pos": i, "unit": unit, "kind": kind, "message": f"{unit} {kind}"}
                                            for i, (unit, kind) in enumerate(unit_statuses.items())]}
    verdict = score(dino, found, reports(dino), facts)
    assert verdict.status is expected
    assert {u for u, info in verdict.units.items() if info.status is not Status.OK} == set(unit_statuses)
    lost = sum(t.points for t in dino.tests.values() if t.unit in unit_statuses and t.kind == "hidden")
    assert verdict.score == dino.max_score - lost


def test_cell_errors_notices_and_the_workers_stderr(dino, found):
    runs = reports(dino)
    runs["dino_head"].cell_errors = [{"pos": 4, "unit": "dino_head", "label": "your cell", "message":
                                      "your code raised ValueError: no"},
                                     {"pos": 1, "unit": None, "label": "code cell 2", "message":
                                      "your code raised KeyError: 'x'"}]
    facts = {"finished": True, "stderr": "noise", "problems": [{"pos": 9, "unit": None, "kind": "crashed",
                                                                "message": "cell 10 ended the process"}]}
    verdict = score(dino, found, runs, facts)
    assert verdict.units["dino_head"].cell_error == "your code raised ValueError: no"
    assert verdict.notices == ["cell 10 ended the process",
                               "code cell 2 raised KeyError: 'x' (the rest of the notebook ran on, as in a kernel)"]
    assert "stderr" not in verdict.run and "problems" not in verdict.run
    assert "stderr" in score(dino, found, runs, {**facts, "finished": False}).run


# ---------------------------------------------------------------------------------------------------- its JSON
VERDICT_KEYS = ["assignment", "sha256", "grader", "problems", "tampering", "notices", "cells", "answers", "units",
                "tests", "status", "score", "max_score", "manual_max", "run"]


def test_the_json_has_exactly_the_old_keys_and_plain_values(dino, found):
    verdict = score(dino, found, reports(dino, dino_loss={"internal_error": "Traceback ..."}), {"finished": True})
    data = verdict.to_json()
    assert list(data) == [*VERDICT_KEYS[:10], "internal_errors", *VERDICT_KEYS[10:]]
    assert type(data["status"]) is str and data["status"] == "crashed"
    assert all(type(info["status"]) is str for info in data["units"].values())
    assert list(data["units"]["dino_head"]) == ["part", "status", "message", "checks", "cell_error", "seconds",
                                                "visible"]
    assert list(data["tests"]["test_dino_head_hidden"]) == ["unit", "kind", "points", "max_points", "passed",
                                                            "message"]
    assert data["internal_errors"] == {"dino_loss": "Traceback ..."}
    assert list(score(dino, found, reports(dino), {}).to_json()) == VERDICT_KEYS


def test_the_json_round_trips(dino, found):
    verdict = score(dino, found, reports(dino, checks=FAIL), {"finished": True})
    verdict.seconds, verdict.student, verdict.notebook = 1.5, "ann", "x.ipynb"
    verdict.recording, verdict.graded_status, verdict.not_recorded = [], Status.OK, ["the feedback failed"]
    verdict.status = Status.NOT_RECORDED
    data = json.loads(json.dumps(verdict.to_json()))
    assert list(data)[:2] == ["student", "notebook"]
    assert list(data)[-4:] == ["seconds", "recording", "graded_status", "not_recorded"]
    again = Verdict.from_json(data)
    assert again == verdict and again.to_json() == data and again.graded_status is Status.OK
    assert Verdict.from_json({**data, "new_key": 1}).to_json() == {**data, "new_key": 1}


def test_points_per_unit():
    verdict = Verdict(units={"a": UnitResult("Part I", Status.OK), "c": UnitResult("Part II", Status.OK)},
                      tests={"t1": TestResult("a", "visible", 1.0, 1.0, True),
                             "t2": TestResult("a", "hidden", 0.0, 2.0, False),
                             "t3": TestResult("b", "hidden", 3.0, 3.0, True)})
    assert verdict.unit_points() == {"a": (1.0, 3.0), "c": (0.0, 0.0), "b": (3.0, 3.0)}
    assert verdict.unit_points(["b"]) == {"b": (3.0, 3.0), "a": (1.0, 3.0)}
