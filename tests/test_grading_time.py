"""Where grading time goes: the class report's per-unit times (median, slowest, timeouts) and the slowest
submissions, and the progress line's estimate of the time left."""

from __future__ import annotations

from autograder.commands import grade_class
from autograder.commands.report import grading_times, timing_html
from autograder.grading.verdict import Status, UnitResult, Verdict


def verdict(student: str, seconds: float, units: dict[str, tuple[float, Status]]) -> Verdict:
    return Verdict(student=student, seconds=seconds,
                   units={u: UnitResult(part=u, status=status, seconds=t) for u, (t, status) in units.items()})


def test_the_report_names_the_median_the_slowest_and_the_timeouts_of_each_unit(dino):
    ok, late = Status.OK, Status.TIMEOUT
    results = [verdict("ann", 3.0, {"dino_head": (1.0, ok), "dino_loss": (0.5, ok)}),
               verdict("bob", 9.0, {"dino_head": (2.0, ok), "dino_loss": (7.5, late)}),
               verdict("cy", 4.0, {"dino_head": (4.0, ok), "dino_loss": (0.7, ok)}),
               Verdict(student="dee", status=Status.MISSING)]
    times = grading_times(results, dino.units)
    assert sorted(times["units"]["dino_head"]) == [(1.0, "ann"), (2.0, "bob"), (4.0, "cy")]
    assert times["timeouts"] == {u: (["bob"] if u == "dino_loss" else []) for u in dino.units}
    assert times["submissions"][0] == (9.0, "bob")
    html = timing_html(results, dino)
    assert "<tr><td><code>dino_head</code></td><td>3</td><td>2.00</td><td>4.00 (cy)</td><td>0</td></tr>" in html
    assert "<td><code>dino_loss</code></td><td>3</td><td>0.70</td><td>7.50 (bob)</td><td>1 (bob)</td>" in html
    assert "Median 4.0 s per submission (3 graded)" in html
    assert html.index("<td>bob</td><td>9.0</td>") < html.index("<td>cy</td><td>4.0</td>")
    assert "data:image/png;base64," in html


def test_the_progress_line_estimates_the_time_left_from_the_rate_so_far(monkeypatch, capsys):
    clock = iter([100.0, 110.0, 110.0, 130.0, 130.0])
    monkeypatch.setattr(grade_class.time, "monotonic", lambda: next(clock))
    progress = grade_class.Progress("autograde x", 4, quiet=False)
    assert progress.eta() is None
    progress.update("ann", "ok")       # 1 of 4 after 10 s: 30 s left
    progress.update("bob", "ok")       # 2 of 4 after 30 s: 30 s left
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["autograde x: 1/4 graded in 10 s, about 30 s left",
                     "autograde x: 2/4 graded in 30 s, about 30 s left"]
    assert grade_class._duration(3725) == "1 h 02 min" and grade_class._duration(75) == "1 min 15 s"
