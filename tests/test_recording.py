"""After the verdict: whatever goes wrong for one submission while it is recorded (nbgrader's gradebook, its feedback
page, its result file) stays with that submission, and nbgrader records every notebook, also one whose metadata
nbgrader's own checks refuse.

These tests are about what happens after grading, so a stand-in engine gives the verdicts (a unit passes when the
student's cell is the solution's; nothing is run); nbgrader, the feedback, the result files and the reports are real.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import pytest

from autograder.assignment.course import cells_by_grade_id, nbgrader_meta, source_of
from autograder.assignment.submission import inspect
from autograder.commands import grade_class as autograde
from autograder.grading.engine import Engine
from autograder.grading.scoring import score
from autograder.grading.verdict import Status, UnitRun, Verdict
from autograder.proof.submissions import correct, write_class


class VerdictEngine:
    """Stands in for :class:`autograder.grading.engine.Engine` (same calls): a unit passes when its cell is the
    solution's."""

    not_graded, grade_file = Engine.not_graded, Engine.grade_file

    def __init__(self, assignment, settings=None, hide=()):
        self.assignment, self.warnings = assignment, []
        self.solution = cells_by_grade_id(assignment.solution)

    def grade(self, raw, name=None):
        found = inspect(raw, self.assignment, name)
        events = {}
        for unit in self.assignment.units if not found.status else []:
            passed = found.cells.get(unit) == source_of(self.solution[unit])
            message = "" if passed else "expected the reference solution's code"
            events[unit] = UnitRun(unit, results=[{"name": "the cell is the solution's", "passed": passed,
                                                   "message": message}],
                                   visible={g: {"passed": passed, "message": message} for g, t in
                                            self.assignment.tests.items() if t.unit == unit and t.kind == "visible"})
        return score(self.assignment, found, events, {"finished": True})

    def close(self):
        pass


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(autograde, "Engine", VerdictEngine)


def _autograde(dino, course: Path, capsys) -> tuple[int, str]:
    code = autograde.main([dino.id, "--course", str(course), "--workers", "2", "--quiet"])
    return code, capsys.readouterr().err


def _state(dino, course: Path) -> dict[str, dict]:
    """Per student: the gradebook's points per cell, the result file, the feedback page and the grades.csv row."""
    from nbgrader.api import Gradebook, MissingEntry

    with (course / "reports" / dino.id / "grades.csv").open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    state = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in sorted(p.name for p in (course / "submitted").iterdir()):
            try:
                nb = gb.find_submission_notebook("dino", dino.id, student)
                points = {g.name: g.auto_score for g in nb.grades if g.cell_type == "code"}
            except MissingEntry:
                points = None
            result_file = course / "autograded" / student / dino.id / "dino-autograde.json"
            feedback = course / "feedback" / student / dino.id / "dino.html"
            result = json.loads(result_file.read_text()) if result_file.is_file() else None
            if result:
                result.pop("notebook")  # the course folder's path
            state[student] = {"gradebook": points, "result": result, "csv": rows.get(student),
                              "feedback": feedback.read_text() if feedback.is_file() else None}
    return state


def _fault(step: str, student: str):
    """Make one step after grading raise for one student."""
    def failing(original):
        def call(*args, **kwargs):
            about = json.dumps([str(a) if isinstance(a, Path) else a.to_json() for a in args
                                if isinstance(a, (Verdict, Path))], default=str)
            if f'"student": "{student}"' in about or f"/{student}/" in about:
                raise OSError(f"injected fault in {step}")
            return original(*args, **kwargs)
        return call
    return failing


STEPS = {"record": (autograde.LazyRecorder, "record"), "feedback": (autograde, "write_feedback"),
         "result file": (autograde, "write_result")}


@pytest.fixture(scope="module")
def clean_run(dino, tmp_path_factory):
    """Three students graded and recorded without any fault (the state every faulty run is compared with)."""
    course = tmp_path_factory.mktemp("clean")
    write_class(dino, course, ["correct", "partial", "untouched"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(autograde, "Engine", VerdictEngine)
        assert autograde.main([dino.id, "--course", str(course), "--workers", "2", "--quiet"]) == 0
    return course


@pytest.mark.parametrize("step", list(STEPS))
def test_a_fault_after_grading_stays_with_its_student_and_a_rerun_mends_it(dino, clean_run, stand_in, step,
                                                                           tmp_path, monkeypatch, capsys):
    clean = _state(dino, clean_run)
    assert {s: r["result"]["status"] for s, r in clean.items()} == dict.fromkeys(clean, "ok")
    assert len({r["result"]["score"] for r in clean.values()}) == 3  # three different scores
    course = tmp_path / "course"
    shutil.copytree(clean_run / "submitted", course / "submitted")
    owner, name = STEPS[step]
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, _fault(step, "partial")(getattr(owner, name)))
        code, err = _autograde(dino, course, capsys)
    assert code == 1 and "NEEDS A LOOK: partial: not-recorded" in err and f"injected fault in {step}" in err
    faulty = _state(dino, course)
    for student in ("correct", "untouched"):
        assert faulty[student] == clean[student], student
    partial = faulty["partial"]
    assert partial["csv"]["status"] == Status.NOT_RECORDED
    assert partial["csv"]["total"] == clean["partial"]["csv"]["total"]
    assert f"injected fault in {step}" in partial["csv"]["notes"] and "Run autograde again" in partial["csv"]["notes"]
    for name in ("report.html",):
        assert "partial" in (course / "reports" / dino.id / name).read_text()
    assert "not-recorded" in (course / "reports" / "index.html").read_text()
    # the rerun grades nothing again (but a submission without a result file) and records what was missing
    regraded = []
    original = autograde.grade_student
    monkeypatch.setattr(autograde, "grade_student", lambda e, c, s: regraded.append(s) or original(e, c, s))
    code, err = _autograde(dino, course, capsys)
    assert code == 0 and not err
    assert regraded == (["partial"] if step == "result file" else [])
    assert _state(dino, course) == clean


# ---------------------------------------------------------------------------------------------------------------------
# Submissions that nbgrader's own checks refuse (nbgrader/nbgraderformat/v3.py, preprocessors/overwritecells.py,
# deduplicateids.py, converters/base.py). Each is what a student's copy-paste or an edited notebook's metadata does.
def _cell(nb, grade_id):
    return cells_by_grade_id(nb)[grade_id]


def _refused(dino) -> dict:
    unit = next(iter(dino.units))
    test = next(g for g, t in dino.tests.items() if t.unit == unit)
    variants = {}

    def variant(name, change):
        nb = correct(dino)
        change(nb)
        variants[name] = nb

    def pasted(nb, kind, **meta):
        cell = {"cell_type": kind, "id": f"pasted-{len(nb['cells'])}", "source": "x = 1", "metadata": {
            "nbgrader": {"grade": False, "locked": False, "solution": False, "schema_version": 3, **meta}}}
        nb["cells"].append({**cell, "execution_count": None, "outputs": []} if kind == "code" else cell)

    # SchemaTooOldError / SchemaTooNewError: nbgrader stops the whole class there (converters/base.py)
    variant("schema-too-old", lambda nb: nbgrader_meta(_cell(nb, unit)).update(schema_version=1))
    variant("schema-too-new", lambda nb: nbgrader_meta(_cell(nb, unit)).update(schema_version=4))
    # OverwriteCells: float(points) -> ValueError
    variant("points-as-text", lambda nb: nbgrader_meta(_cell(nb, test)).update(points="two"))
    # OverwriteCells: a locked cell whose flags changed no longer matches its checksum -> RuntimeError
    variant("test-marked-solution", lambda nb: nbgrader_meta(_cell(nb, test)).update(solution=True))
    variant("grade-as-text", lambda nb: nbgrader_meta(_cell(nb, test)).update(grade="yes"))
    # OverwriteCells drops an unknown grade_id, then CheckCellMetadata: a graded cell without grade_id -> KeyError
    variant("test-cell-of-another-notebook", lambda nb: pasted(nb, "code", grade=True, locked=True, points=1,
                                                               grade_id="test_from_last_year"))
    variant("grade-id-with-spaces", lambda nb: nbgrader_meta(_cell(nb, unit)).update(grade_id="my answer"))
    # CheckCellMetadata: "Markdown solution cell is not marked as a grade cell", "Task cells have to be markdown"
    variant("markdown-solution-only", lambda nb: pasted(nb, "markdown", solution=True, grade_id="notes"))
    variant("task-in-code", lambda nb: pasted(nb, "code", task=True, grade_id="task_1"))
    # a grade_id that is not a string (the grader's own inspection and DeduplicateIds failed on it)
    variant("grade-id-list", lambda nb: nbgrader_meta(_cell(nb, unit)).update(grade_id=["x"]))
    # OverwriteCells.add_missing_grade_cells: a deleted solution cell followed by its deleted test cell -> KeyError
    variant("unit-and-test-deleted", lambda nb: nb.__setitem__("cells", [
        c for c in nb["cells"] if nbgrader_meta(c).get("grade_id") not in (unit, test)]))
    return variants


@pytest.fixture(scope="module")
def refused_class(dino, tmp_path_factory):
    course = tmp_path_factory.mktemp("refused")
    for name, nb in _refused(dino).items():
        path = course / "submitted" / name / dino.id / dino.notebook
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(nb))
    (course / "submitted" / "schema-too-old" / dino.id / "timestamp.txt").write_text("the day before the deadline")
    return course


def test_nbgrader_refuses_each_of_these_notebooks_on_its_own(dino, refused_class, stand_in, tmp_path, monkeypatch,
                                                            capsys):
    """Without the course's matching of released cells, nbgrader refuses every one (the cases are real): the class
    grader then records the released notebook with the student's cells, and says so."""
    from autograder.commands.nbgrader_hooks import MatchReleasedCells

    monkeypatch.setattr(MatchReleasedCells, "preprocess", lambda self, nb, resources: (nb, resources))
    course = tmp_path / "course"
    shutil.copytree(refused_class / "submitted", course / "submitted")
    code, _ = _autograde(dino, course, capsys)
    state = _state(dino, course)
    assert code == 0
    for student, got in state.items():
        assert any("nbgrader refused the notebook as submitted" in note for note in got["result"]["recording"]), \
            student
        assert sum(got["gradebook"].values()) == got["result"]["score"], student


def test_nbgrader_records_every_notebook_its_checks_would_refuse(dino, refused_class, stand_in, capsys):
    code, err = _autograde(dino, refused_class, capsys)
    state = _state(dino, refused_class)
    assert code == 0 and not err
    full = dino.max_score
    for student, got in state.items():
        result = got["result"]
        assert result["status"] != Status.NOT_RECORDED and got["gradebook"] is not None, student
        assert sum(got["gradebook"].values()) == result["score"], student
        notes = [n for n in result["recording"] if "timestamp.txt" not in n]
        assert not notes, (student, notes)
    assert state["schema-too-old"]["result"]["status"] == "ok" and state["schema-too-old"]["result"]["score"] == full
    assert any("timestamp.txt is not a time" in n for n in state["schema-too-old"]["result"]["recording"])
    assert state["unit-and-test-deleted"]["result"]["score"] < full


def test_the_single_notebook_path_grades_what_it_can_and_says_what_it_cannot(dino, tmp_path, monkeypatch, capsys):
    from autograder.commands import grade

    monkeypatch.setattr(grade, "Engine", VerdictEngine)
    good, unreadable = tmp_path / "good.ipynb", tmp_path / "unreadable.ipynb"
    for path in (good, unreadable):
        path.write_text(json.dumps(correct(dino)))
    read_bytes = Path.read_bytes

    def refuse(path):
        if path.name == unreadable.name:
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    out = tmp_path / "out.json"
    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", refuse)
        code = grade.main([str(good), str(unreadable), "--assignment", dino.id, "--json", str(out)])
    err = capsys.readouterr().err
    results = json.loads(out.read_text())
    assert results[0]["status"] == "ok" and results[0]["score"] == dino.max_score
    assert code == 1 and results[1]["status"] == "not-graded" and "unreadable.ipynb" in err
    assert "could not be read (PermissionError: Permission denied)" in results[1]["tests"][
        next(iter(dino.tests))]["message"]
    # nowhere to write the results: said before anything is graded
    blocked = tmp_path / "file"
    blocked.write_text("")
    code = grade.main([str(good), "--assignment", dino.id, "--json", str(blocked / "out.json")])
    assert code == 2 and "cannot write the results" in capsys.readouterr().err


def test_a_notebook_the_inspection_cannot_read_is_not_graded_never_a_crash(dino, monkeypatch):
    from autograder.assignment import submission

    def broken(*args, **kwargs):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(submission, "inspect", broken)
    engine = VerdictEngine(dino)
    verdict = Engine.grade(engine, json.dumps(copy.deepcopy(correct(dino))).encode())
    assert verdict.status == Status.NOT_GRADED and verdict.score == 0
    assert "the grader failed while reading this notebook (TypeError" in verdict.units[next(iter(dino.units))].message
