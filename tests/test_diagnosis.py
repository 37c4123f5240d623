"""Feedback names the likely bug: a unit whose failed checks are exactly those of a planted bug gets that bug's name
(several when bugs share their failures), anything else gets none; the committed signatures are what grading the
planted bugs gives, every planted bug is named and no correct solution is."""

from __future__ import annotations

import json

import pytest

from autograder.assignment.course import Assignment, assignment_ids
from autograder.commands.report import feedback_html, report_html
from autograder.grading import diagnosis
from autograder.grading.diagnosis import catalog, derive, diagnose, normalize, observation, uncaught
from autograder.grading.verdict import Status, TestResult, UnitResult, Verdict
from autograder.proof.submissions import mutants

IDS = assignment_ids()


def test_a_message_is_compared_by_its_first_line_without_floats_and_lists():
    assert normalize("loss: expected 0.25, got -1.5e-3. Check the center\nTraceback ...") == \
        "loss: expected #, got #. Check the center"
    assert normalize("shape (2, 3) at step 4, lr 1e-05") == "shape (2, 3) at step 4, lr #"
    assert normalize("expected tensor([[1., 2.], [3.5, 4.]]), got [0, [1, [2]]]") == "expected tensor([…]), got […]"
    assert normalize("mlp.0.weight and layer1.bias differ") == "mlp.0.weight and layer1.bias differ"
    assert normalize("") == ""
    assert normalize("expected 0.1234, got 0.5678") == normalize("expected 2.5, got 3e+2")  # any floats
    assert normalize("expected 3 labels") != normalize("expected 4 labels")                # integers stay


def checks(*failed: tuple[str, str], passed: int = 2) -> list[dict]:
    return ([{"name": f"check {i}", "passed": True, "message": ""} for i in range(passed)]
            + [{"name": name, "passed": False, "message": message} for name, message in failed])


def verdict(*failed: tuple[str, str], status: Status = Status.OK, passed: int = 2) -> Verdict:
    return Verdict(units={"u": UnitResult("Part I", status, checks=checks(*failed, passed=passed)),
                          "v": UnitResult("Part II", Status.OK, checks=checks())})


LOSS = ("the loss [2 global]", "loss: expected 0.51, got 0.73. Check the centering\nmore lines")
CENTER = ("the center [momentum 0.9]", "center: expected [0.1, 0.2], got [0.3, 0.4]")
SHAPE = ("the shape", "expected (2, 3), got (3, 2)")


def signatures(**bugs: Verdict) -> dict:
    """A catalog as ``bug_signatures.json`` holds it, from one verdict per bug (its failures in unit ``u``)."""
    return catalog({"u": [{"bug": name, "signature": sorted(map(list, observation(v, "u")))}
                          for name, v in bugs.items()]}, ["u", "v"])


def test_the_bug_whose_failures_match_exactly_is_named_in_its_unit_only():
    known = signatures(**{"center updated early": verdict(LOSS, CENTER), "no centering": verdict(LOSS)})
    other_run = verdict((LOSS[0], "loss: expected 0.52, got 0.9. Check the centering"),
                        (CENTER[0], "center: expected [0.15, 0.2], got [0.3, 0.45, 0.1]"), passed=5)
    assert diagnose(other_run, known) == {"u": ["center updated early"]}
    assert diagnose(verdict(LOSS), known) == {"u": ["no centering"]}
    assert diagnose(Verdict.from_json(json.loads(json.dumps(other_run.to_json()))), known) == \
        {"u": ["center updated early"]}


def test_no_name_without_an_exact_match():
    known = signatures(**{"center updated early": verdict(LOSS, CENTER)})
    assert diagnose(verdict(LOSS, CENTER, SHAPE), known) == {}                     # one failure more
    assert diagnose(verdict(CENTER), known) == {}                                  # one failure fewer
    assert diagnose(verdict(LOSS, (CENTER[0], "center: got NaN")), known) == {}    # another message
    assert diagnose(verdict((LOSS[0].replace("2", "4"), LOSS[1]), CENTER), known) == {}  # other parameters
    assert diagnose(verdict(), known) == {}                                        # the unit passed
    assert diagnose(verdict(LOSS, CENTER, status=Status.TIMEOUT), known) == {}     # not ok: its checks say nothing
    assert diagnose(verdict(LOSS, CENTER), {}) == {}                               # no signatures, no names


def test_bugs_that_share_their_failures_are_named_together():
    known = signatures(**{"image-major views": verdict(LOSS), "same views paired": verdict(LOSS),
                          "no centering": verdict(LOSS, CENTER)})
    assert diagnose(verdict(LOSS), known) == {"u": ["image-major views", "same views paired"]}


def test_the_diagnoses_are_in_the_verdicts_json_only_when_there_are_some():
    plain = verdict(LOSS)
    assert "diagnoses" not in plain.to_json()
    plain.diagnoses = {"u": ["no centering"]}
    data = json.loads(json.dumps(plain.to_json()))
    assert data["diagnoses"] == {"u": ["no centering"]} and Verdict.from_json(data) == plain


def test_without_a_signatures_file_nothing_is_named(tmp_path):
    class Graders:
        graders_dir, units = tmp_path, {"u": "Part I"}

    assert diagnosis.load(Graders) == {}
    signature = sorted(map(list, observation(verdict(LOSS), "u")))
    (tmp_path / diagnosis.SIGNATURES).write_text(json.dumps(
        {"about": "...", "u": [{"bug": "no centering", "signature": signature}]}))
    assert diagnose(verdict(LOSS), diagnosis.load(Graders)) == {"u": ["no centering"]}


@pytest.mark.parametrize("assignment_id", IDS)
def test_signatures_come_from_the_planted_bugs_in_their_order_and_uncaught_ones_are_left_out(assignment_id):
    assignment = Assignment.load(assignment_id)
    planted = mutants(assignment).MUTANTS
    silent = next(iter(planted))  # made to fail no check
    def made_by(name: str, unit: str) -> Verdict:
        """Its unit fails one check of its own (the silent one none); every other unit fails one too."""
        own = [] if name == silent else [(f"{name} check", "got 0.5")]
        return Verdict(units={u: UnitResult("", Status.OK, checks=checks(*own) if u == unit else
                                            checks((f"{name} elsewhere", "x"))) for u in assignment.units})

    made = {name: made_by(name, case[0]) for name, case in planted.items()}
    data = derive(assignment, made)
    assert list(data) == ["about", *assignment.units]
    for unit in assignment.units:
        expected = [name for name, case in planted.items() if case[0] == unit and name != silent]
        assert [entry["bug"] for entry in data[unit]] == expected
        assert all(entry["signature"] == [[f"{entry['bug']} check", "got #"]] for entry in data[unit])
    assert uncaught(assignment, data) == [silent]
    with pytest.raises(KeyError, match="no verdict"):
        derive(assignment, {name: v for name, v in made.items() if name != silent})


def test_feedback_names_the_mistake_and_the_report_counts_it(dino):
    unit = next(iter(dino.units))
    diagnosed = Verdict(assignment=dino.id, student="ann", units={unit: UnitResult("Part I", Status.OK,
                                                                                   checks=checks(LOSS))},
                        tests={"t": TestResult(unit, "hidden", 0.0, 2.0, False, "failed")},
                        diagnoses={unit: ["center <updated> before the loss"]})
    page = feedback_html(diagnosed)
    hint = "This looks like a known mistake: <b>center &lt;updated&gt; before the loss</b>."
    assert hint in page and page.index(f"<code>{unit}</code>)</h3>") < page.index(hint) < page.index("Failed checks")
    assert "<updated>" not in page
    several = Verdict(**{**vars(diagnosed), "student": "bob", "diagnoses": {unit: ["image-major views", "same"]}})
    assert "one of these known mistakes: <b>image-major views</b>; <b>same</b>." in feedback_html(several)
    clean = Verdict(assignment=dino.id, student="cy", units={unit: UnitResult("Part I", Status.OK, checks=checks())})
    assert "known mistake" not in feedback_html(clean)

    report = report_html([diagnosed, diagnosed, several, clean], dino, {})
    section = report[report.index("Known mistakes named"):]
    assert f"<tr><td>center &lt;updated&gt; before the loss</td><td><code>{unit}</code></td><td>2</td></tr>" in section
    assert f"<tr><td>one of: image-major views; same</td><td><code>{unit}</code></td><td>1</td></tr>" in section
    assert "<td colspan=3>none</td>" in report_html([clean], dino, {})


# ---- the corpus graded as a class (the session's own grading; see conftest.py) --------------------------------------
def _mutants(corpus):
    return [e for e in corpus if e.kind == "mutant"]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", IDS, indirect=True)
def test_the_committed_signatures_are_what_the_planted_bugs_give(assignment, corpus, graded_class):
    _, by_class = graded_class
    path = assignment.graders_dir / diagnosis.SIGNATURES
    committed = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    fresh = derive(assignment, {e.case: by_class[e.name] for e in _mutants(corpus)})
    assert committed == fresh, f"{path.name} is out of date: run `python -m autograder signatures {assignment.id}`"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", IDS, indirect=True)
def test_every_planted_bug_is_named_in_its_unit_and_nowhere_else(assignment, corpus, graded_class):
    _, by_class = graded_class
    planted = _mutants(corpus)
    seen = {e.name: observation(by_class[e.name], e.unit) for e in planted}
    wrong, alone, together = {}, 0, 0
    for entry in planted:
        named = by_class[entry.name].get("diagnoses", {})  # as the engine named it while grading the class
        sharing = sorted(e.case for e in planted if e.unit == entry.unit and seen[e.name] == seen[entry.name])
        if not seen[entry.name] or set(named) != {entry.unit} or sorted(named[entry.unit]) != sharing:
            wrong[entry.case] = {"named": named, "sharing its failures": sharing}
        elif len(sharing) == 1:
            alone += 1
        else:
            together += 1
    print(f"{assignment.id}: {alone} planted bugs named alone, {together} named together with the bugs that share "
          f"their failures, {len(wrong)} not named as they should be")
    assert not wrong, wrong


@pytest.mark.slow
@pytest.mark.parametrize("assignment", IDS, indirect=True)
def test_no_correct_solution_is_named_a_mistake(assignment, corpus, graded_class):
    _, by_class = graded_class
    correct = [e for e in corpus if e.kind == "alternative" or e.name == "ex-correct"]
    named = {e.case: by_class[e.name]["diagnoses"] for e in correct if by_class[e.name].get("diagnoses")}
    print(f"{assignment.id}: {len(named)} of {len(correct)} correct solutions named a mistake")
    assert len(correct) > 1 and not named, named
