"""What class grading hands out: per-student HTML feedback, ``grades.csv`` and the instructor's report.

Feedback is built from the check results only (titles and messages written for students), never from test code,
so the source of the hidden tests cannot leak. Everything a submission controls (its messages, its answers) is
HTML-escaped.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import textwrap
from collections import Counter
from pathlib import Path

from autograder.grading.verdict import UNGRADED, Status, Verdict

STYLE = """<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}.ok{color:#17692c}.fail{color:#a31515}pre{white-space:pre-wrap;
background:#f7f7f7;padding:6px;margin:2px 0}.status{font-weight:bold}
.hint{background:#fff6dd;border-left:4px solid #e0a800;padding:4px 8px}img{max-width:100%}
</style>"""


def explain(result: Verdict) -> str:
    """For the instructor: why a result is ``not-recorded`` or ``not-graded``, what is known and what to do."""
    if result.status == Status.NOT_GRADED:
        return "; ".join(result.problems) + "; it is graded again on the next run"
    return (f"graded ({result.graded_status}, {result.score:g} / {result.max_score:g} "
            f"points), but {'; '.join(result.not_recorded or [])}. Its points are the grader's verdict, in "
            "grades.csv and the report; nbgrader's gradebook (formgrader, export) has it once it is recorded. Run "
            "autograde again to retry these steps (it is not graded again); if a step fails again, its reason says "
            "what to fix")


def _e(text) -> str:
    return html.escape(str(text))


def _problems(result: Verdict) -> str:
    """Why a submission could not be graded or recorded normally, in one line."""
    told = [explain(result)] if result.status in (Status.NOT_GRADED, Status.NOT_RECORDED) else result.problems
    return "; ".join([*told, *result.tampering, *(result.recording or [])])


def _unit_details(result: Verdict, unit: str) -> str:
    """What a student should look at in one unit (empty: nothing)."""
    info = result.units.get(unit)
    part, message = (info.part, info.message) if info else (unit, "")
    checks = info.checks if info else []
    failed = [c for c in checks if not c["passed"]]
    visible = [(g, t.message) for g, t in result.tests.items()
               if t.unit == unit and t.kind == "visible" and not t.passed and t.message and t.message != message]
    bugs = result.diagnoses.get(unit, [])  # the planted bugs whose failures are exactly this unit's
    if not (message or failed or visible or bugs):
        return ""
    named = "; ".join(f"<b>{_e(bug)}</b>" for bug in bugs)
    hint = (f"<p class='hint'>This looks like {'one of these known mistakes' if len(bugs) > 1 else 'a known mistake'}"
            f": {named}.</p>" if bugs else "")
    groups: dict[str, list[str]] = {}  # checks failing with the same message are listed together
    for c in failed:
        groups.setdefault(c["message"], []).append(c["name"])
    items = "".join(f"<li>{'<br>'.join(f'<b>{_e(n)}</b>' for n in names)}<pre>{_e(text)}</pre></li>"
                    for text, names in groups.items())
    summary = f"{sum(c['passed'] for c in checks)} of {len(checks)} checks passed" if checks else ""
    cell_error = info.cell_error if info else ""
    return (f"<h3>{_e(part)} (<code>{unit}</code>)</h3>" + hint
            + (f"<p class='fail'>{_e(message)}</p>" if message else "")
            + "".join(f"<p>The visible test <code>{_e(g)}</code> (the test cell you can run) failed:"
                      f"</p><pre>{_e(m)}</pre>" for g, m in visible)
            + (f"<p>Running your cell raised:</p><pre>{_e(cell_error)}</pre>" if cell_error else "")
            + (f"<p>{summary}. Failed checks:</p><ul>{items}</ul>" if items else "")
            + f"<p>Revisit {_e(part)}, fix the code of <code>{unit}</code>, run its cell and its test cell again.</p>")


def _written_answers(result: Verdict, grades) -> tuple[str, str]:
    """The feedback's grade line and its table of the written answers (``grades``:
    :class:`~autograder.commands.manual.ManualGrades` from the gradebook; None: not read, only their points said)."""
    auto = f"Autograded score: {result.score:g} / {result.max_score:g}"
    if grades is None:
        return auto + (f" (+ {result.manual_max:g} points for the written answers, graded by hand)."
                       if result.manual_max else "."), ""
    if not grades.answers:
        return auto + ".", ""
    rows = "".join(f"<tr><td><code>{_e(g)}</code></td><td>"
                   + ("not graded by hand yet" if a.points is None else f"{a.points:g} / {a.max_points:g}")
                   + f"</td><td>{_e(a.comment).replace(chr(10), '<br>')}</td></tr>" for g, a in grades.answers.items())
    table = ("<h2>Written answers (graded by hand)</h2><table><tr><th>Answer</th><th>Points</th><th>Comment</th></tr>"
             f"{rows}</table>")
    total = result.score + grades.points
    top = result.max_score + grades.max_points
    if not grades.pending:
        return (f"Grade: automatic {result.score:g} + written {grades.points:g} = {total:g} / {top:g}.", table)
    if len(grades.pending) == len(grades.answers):
        return (f"{auto}. The written answers ({grades.max_points:g} points) are not graded by hand yet; the final "
                f"grade (of {top:g}) follows when they are.", table)
    return (f"{auto}. Written answers: {grades.points:g} points so far; not graded by hand yet: "
            f"{', '.join(grades.pending)}; the final grade (of {top:g}) follows when they are.", table)


def feedback_html(result: Verdict, manual=None) -> str:
    """One student's feedback page (``manual``: the written answers' points and comments, see
    :func:`_written_answers`)."""
    rows, details = [], []
    for unit, (points, max_points) in result.unit_points().items():
        info = result.units.get(unit)
        mark = "ok" if points == max_points and max_points else "fail"
        cells = ", ".join(f"{t.kind} {t.points:g} / {t.max_points:g}" for t in result.tests.values() if t.unit == unit)
        rows.append(f"<tr><td>{_e(info.part if info else unit)}</td><td><code>{unit}</code></td>"
                    f"<td class='{mark}'>{points:g} / {max_points:g}</td><td>{_e(cells)}</td></tr>")
        details.append(_unit_details(result, unit))
    details = [d for d in details if d]
    notes = [*result.problems, *result.tampering, *result.notices]
    grade, written = _written_answers(result, manual)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Feedback: {_e(result.assignment)}</title>
{STYLE}</head><body>
<h1>Feedback on {_e(result.assignment)} for {_e(result.student)}</h1>
<p class="status">{_e(grade)}
Status: {_e(result.status)}.</p>
<table><tr><th>Part</th><th>Unit</th><th>Points</th><th>Test cells</th></tr>{''.join(rows)}</table>
{written}
{"<h2>What to look at</h2>" + "".join(details) if details else "<p class='ok'>Every check passed.</p>"}
{"<h2>Notes on the submission</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>" if notes else ""}
<p><small>Each part was graded on its own, with the reference solution standing in for the other parts, so a
mistake costs only the points of its own part. Hidden tests are not shown.</small></p>
</body></html>
"""


def write_feedback(path: Path, result: Verdict, manual=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(feedback_html(result, manual))
    return path


def write_csv(path: Path, results: list[Verdict], units, manual=None) -> Path:
    """One row per student: the points per unit, per written answer (empty while it is still to grade by hand),
    ``autograded``, ``manual`` (graded by hand so far), ``total`` (their sum), ``max_total`` (both included),
    ``needs_manual_grading``, ``status`` and ``notes``. ``manual``: the class's
    :class:`~autograder.commands.manual.HandGraded` (None: no written answers known)."""
    from autograder.commands.manual import ManualGrades

    units = list(units)
    cells = list(manual.cells) if manual else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *units, *cells, "autograded", "manual", "total", "max_total",
                         "needs_manual_grading", "status", "notes"])
        for r in results:
            points = r.unit_points(units)
            grades = manual.of(r) if manual else ManualGrades()
            answers = [grades.answers.get(g) for g in cells]
            notes = _problems(r)[:600]
            writer.writerow([r.student, *(f"{points[u][0]:g}" for u in units),
                             *("" if a is None or a.points is None else f"{a.points:g}" for a in answers),
                             f"{r.score:g}", f"{grades.points:g}", f"{r.score + grades.points:g}",
                             f"{r.max_score + r.manual_max:g}", "yes" if grades.pending else "no", str(r.status),
                             notes])
    return path


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _without_parameters(title: str) -> str:
    """A check's title without the ``[parameters]`` that end it (brackets inside the title stay)."""
    return title.rsplit(" [", 1)[0] if title.endswith("]") else title


def failed_checks(results: list[Verdict]) -> Counter:
    """How many submissions failed each check (named by unit and title; a parametrised check counts once)."""
    counts: Counter = Counter()
    for r in results:
        failed = {f"{unit}: {_without_parameters(check['name'])}" for unit, info in r.units.items()
                  for check in info.checks if not check["passed"]}
        counts.update(failed)
    return counts


def _manual_summary(results: list[Verdict], assignment, manual, graded: list[Verdict]) -> str:
    """The report's part on the written answers: the mean total with them, how many are still to grade by hand, and
    the points per written answer (``manual``: the class's ``HandGraded``; None: only their points said)."""
    if not assignment.manual:
        return "."
    if manual is None:
        return f"\n(+ up to {sum(assignment.manual.values()):g} points for the written answers, graded by hand)."
    grades = {r.student: manual.of(r) for r in results}
    mean = sum(r.score + grades[r.student].points for r in graded) / len(graded) if graded else 0.0
    pending = [(r.student, g) for r in results for g in grades[r.student].pending]
    rows = []
    for grade_id, points in manual.cells.items():
        given = [a.points for r in results if (a := grades[r.student].answers.get(grade_id)) and a.points is not None]
        waiting = sum(1 for _, g in pending if g == grade_id)
        average = f"{sum(given) / len(given):.2f}" if given else ""
        rows.append(f"<tr><td><code>{_e(grade_id)}</code></td><td>{points:g}</td><td>{len(given)}</td>"
                    f"<td>{average}</td><td>{waiting}</td></tr>")
    students = len({s for s, _ in pending})
    still = (f"{len(pending)} written answer(s) of {students} student(s) still to grade by hand (nbgrader's "
             "formgrader; run autograde again afterwards)" if pending else "every written answer graded by hand")
    error = f" <b>The gradebook could not be read ({_e(manual.error)}).</b>" if manual.error else ""
    total = assignment.max_score + sum(assignment.manual.values())
    return (f"\n(+ up to {sum(assignment.manual.values()):g} points for the written answers, graded by hand). "
            f"Mean total with the points graded by hand so far: {mean:.2f} / {total:g}; {still}.{error}"
            "</p>\n<h2>Written answers (graded by hand)</h2><table><tr><th>answer</th><th>points</th><th>graded</th>"
            f"<th>mean points</th><th>still to grade</th></tr>{''.join(rows)}</table><p>")


def report_html(results: list[Verdict], assignment, figures: dict[str, str], manual=None) -> str:
    statuses = Counter(str(r.status) for r in results)
    graded = [r for r in results if r.status not in UNGRADED]
    mean = sum(r.score for r in graded) / len(graded) if graded else 0
    rows = "".join(f"<tr><td>{_e(r.student)}</td><td class='fail'>{_e(r.status)}</td><td>{r.score:g}"
                   f"</td><td>{_e(_problems(r)[:1000]) or _e(_why(r))}"
                   "</td></tr>" for r in results if r.status != Status.OK or r.recording)
    top = failed_checks(results).most_common(15)
    checks = "".join(f"<tr><td>{_e(name)}</td><td>{n}</td><td>{100 * n / max(1, len(graded)):.0f} %</td></tr>"
                     for name, n in top)
    from autograder.grading.diagnosis import named_mistakes

    mistakes = "".join(f"<tr><td>{'one of: ' if len(bugs) > 1 else ''}{_e('; '.join(bugs))}</td><td><code>{_e(unit)}"
                       f"</code></td><td>{n}</td></tr>" for (unit, bugs), n in named_mistakes(results).most_common())
    images = "".join(f"<h2>{_e(title)}</h2><img src='data:image/png;base64,{data}'>" for title, data in figures.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Class report: {_e(assignment.id)}</title>
{STYLE}</head><body><h1>Class report: {_e(assignment.id)}</h1>
<p>{len(results)} students; status: {', '.join(f'{s} {n}' for s, n in statuses.most_common())}.
Mean autograded score of the graded submissions: {mean:.2f} / {assignment.max_score:g}\
{_manual_summary(results, assignment, manual, graded)}</p>
{images}
<h2>Checks failed most often (table)</h2>
<table><tr><th>check</th><th>submissions</th><th>share</th></tr>{checks}</table>
<h2>Known mistakes named (what the class got wrong)</h2>
<table><tr><th>mistake</th><th>unit</th><th>submissions</th></tr>{mistakes or '<tr><td colspan=3>none</td></tr>'}
</table>
{timing_html(results, assignment)}
<h2>Submissions that need a look (status other than ok, or recorded differently)</h2>
<table><tr><th>student</th><th>status</th><th>score</th><th>why</th></tr>{rows or '<tr><td colspan=4>none</td></tr>'}
</table></body></html>
"""


def grading_times(results: list[Verdict], units) -> dict:
    """Where grading time went: per unit the seconds of each graded submission's run (its process, checks included)
    and who ran into the time limit; per submission its seconds (inspection, the units, scoring)."""
    per_unit = {unit: [(r.units[unit].seconds, r.student) for r in results
                       if unit in r.units and r.units[unit].seconds is not None] for unit in units}
    timeouts = {unit: [r.student for r in results if unit in r.units and r.units[unit].status == Status.TIMEOUT]
                for unit in units}
    submissions = sorted(((r.seconds, r.student) for r in results if r.seconds), reverse=True)
    return {"units": per_unit, "timeouts": timeouts, "submissions": submissions}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return (ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2) if ordered else 0.0


def timing_html(results: list[Verdict], assignment, slowest: int = 5) -> str:
    """The report's section on grading time: a box per unit, a table (median, slowest, timeouts) and the slowest
    submissions."""
    import matplotlib.pyplot as plt

    times = grading_times(results, assignment.units)
    rows = []
    for unit, runs in times["units"].items():
        worst = max(runs, default=None)
        late = times["timeouts"][unit]
        rows.append(f"<tr><td><code>{_e(unit)}</code></td><td>{len(runs)}</td><td>{_median([t for t, _ in runs]):.2f}"
                    f"</td><td>{f'{worst[0]:.2f} ({_e(worst[1])})' if worst else ''}</td><td>{len(late)}"
                    f"{' (' + _e(', '.join(late[:5])) + (', ...' if len(late) > 5 else '') + ')' if late else ''}"
                    "</td></tr>")
    if not any(times["units"].values()):
        return "<h2>Grading time</h2><p>No unit was run.</p>"
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(times["units"]) + 1.2))
    units = [u for u, runs in times["units"].items() if runs]
    ax.boxplot([[t for t, _ in times["units"][u]] for u in reversed(units)], vert=False, widths=0.6)
    ax.set_yticks(range(1, len(units) + 1), list(reversed(units)))
    ax.set(xlabel="seconds per submission (the unit's process: its cells and its checks)",
           title="Grading time per unit")
    ax.set_xlim(left=0)
    figure = _png(fig)
    plt.close(fig)
    subs = times["submissions"]
    top = "".join(f"<tr><td>{_e(student)}</td><td>{seconds:.1f}</td></tr>" for seconds, student in subs[:slowest])
    return f"""<h2>Grading time</h2>
<p>Median {_median([t for t, _ in subs]):.1f} s per submission ({len(subs)} graded): reading it, starting its units
and running them (the units of one submission share the cores of its worker).</p>
<img src='data:image/png;base64,{figure}'>
<table><tr><th>unit</th><th>runs</th><th>median (s)</th><th>slowest (s)</th><th>timeouts</th></tr>{''.join(rows)}
</table><p>The slowest submissions:</p><table><tr><th>student</th><th>seconds</th></tr>{top}</table>"""


def _why(result: Verdict) -> str:
    return "; ".join(f"{u}: {i.message}" for u, i in result.units.items() if i.message)[:400]


def write_reports(folder: Path, results: list[Verdict], assignment, manual=None) -> list[Path]:
    """``grades.csv`` and ``report.html`` (with the score histogram and the most failed checks; ``manual``: the
    written answers graded by hand, :class:`~autograder.commands.manual.HandGraded`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2), gridspec_kw={"width_ratios": [3, 2]})
    scores = [r.score for r in results]
    left.hist(scores, bins=[x - 0.5 for x in range(int(assignment.max_score) + 2)], color="#4c72b0", rwidth=0.85)
    left.set(xlabel=f"autograded score (of {assignment.max_score:g})", ylabel="students",
             title=f"Score distribution ({len(results)} students)", xlim=(-1, assignment.max_score + 1))
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    units = list(assignment.units)
    earned = [sum(r.unit_points(units)[u][0] for r in results) for u in units]
    possible = [sum(r.unit_points(units)[u][1] for r in results) for u in units]
    shares = [100 * e / p if p else 0.0 for e, p in zip(earned, possible, strict=True)]
    right.barh(list(reversed(units)), list(reversed(shares)), color="#55a868")
    right.set(xlabel="points the class earned (%)", xlim=(0, 100), title="Points per part")
    fig.tight_layout()
    figures["Score distribution and points per part"] = _png(fig)
    plt.close(fig)
    top = failed_checks(results).most_common(10)
    if top:
        fig, ax = plt.subplots(figsize=(9, 0.55 * len(top) + 1))
        ax.barh([textwrap.fill(name, 60) for name, _ in reversed(top)], [n for _, n in reversed(top)],
                color="#c44e52")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(axis="y", labelsize=8)
        ax.set(xlabel="submissions that failed the check", title="Checks failed most often")
        figures["Checks failed most often"] = _png(fig)
        plt.close(fig)
    csv_path = write_csv(folder / "grades.csv", results, assignment.units, manual)
    html_path = folder / "report.html"
    html_path.write_text(report_html(results, assignment, figures, manual))
    return [csv_path, html_path]


def print_table(results: list[Verdict], assignment, manual=None) -> None:
    """The class table on the terminal: one row per student, one column per unit; with ``manual`` (the class's
    ``HandGraded``) also the written answers' points (``*``: some still to grade by hand) and the total."""
    units = list(assignment.units)
    written = manual is not None and bool(assignment.manual)
    width = max([len(r.student or "") for r in results] + [7])
    print(f"{'student':<{width}}  " + "  ".join(f"{u:>{max(5, len(u))}}" for u in units)
          + (f"  {'auto':>7}  {'written':>8}" if written else "") + f"  {'total':>7}  status")
    for r in results:
        points = r.unit_points(units)
        cells = "  ".join(f"{points[u][0]:g}/{points[u][1]:g}".rjust(max(5, len(u))) for u in units)
        total = f"{r.score:g}/{assignment.max_score:g}"
        if written:
            grades, top = manual.of(r), sum(assignment.manual.values())
            mark = "*" if grades.pending else ""
            cells += f"  {total:>7}  {f'{grades.points:g}/{top:g}{mark}':>8}"
            total = f"{r.score + grades.points:g}/{assignment.max_score + top:g}"
        print(f"{r.student:<{width}}  {cells}  {total:>7}  {r.status}")
    if written and any(manual.of(r).pending for r in results):
        print("* written answers still to grade by hand (nbgrader formgrader); run autograde again afterwards")


def write_course_index(reports: Path) -> Path:
    """``reports/index.html`` and ``reports/grades.csv``: every assignment graded in this course folder side by side
    (from each assignment's own ``grades.csv``): per student the total of each assignment, per assignment the
    students, statuses and mean score, with a link to its report."""
    tables = {}
    for path in sorted(Path(reports).glob("*/grades.csv")):
        with path.open(newline="") as handle:
            tables[path.parent.name] = list(csv.DictReader(handle))
    students = sorted({row["student"] for rows in tables.values() for row in rows})
    by_student = {a: {r["student"]: r for r in rows} for a, rows in tables.items()}
    with (Path(reports) / "grades.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *(f"{a} total" for a in tables), *(f"{a} status" for a in tables),
                         *(f"{a} needs manual grading" for a in tables)])
        for student in students:
            found = {a: rows.get(student) for a, rows in by_student.items()}
            writer.writerow([student, *(f["total"] if f else "" for f in found.values()),
                             *(f["status"] if f else "not in the class" for f in found.values()),
                             *(f.get("needs_manual_grading") or "" if f else "" for f in found.values())])
    rows = []
    for aid, table in tables.items():
        graded = [r for r in table if r["status"] not in UNGRADED]
        mean = sum(float(r["total"]) for r in graded) / len(graded) if graded else 0.0
        top = max((float(r["max_total"]) for r in table if float(r["max_total"] or 0)), default=0.0)
        statuses = Counter(r["status"] for r in table)
        waiting = sum(r.get("needs_manual_grading") == "yes" for r in table)
        rows.append(f"<tr><td><a href='{_e(aid)}/report.html'>{_e(aid)}</a></td><td>{len(table)}</td>"
                    f"<td>{', '.join(f'{_e(s)} {n}' for s, n in statuses.most_common())}</td>"
                    f"<td>{mean:.2f} / {top:g}</td><td>{waiting}</td></tr>")
    index = Path(reports) / "index.html"
    index.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>Class reports</title>{STYLE}</head>
<body><h1>Class reports</h1><p>Every assignment graded in this course folder; per-student totals of all of them in
<a href="grades.csv">grades.csv</a>. A total is the autograded score plus the points graded by hand so far.</p>
<table><tr><th>assignment</th><th>students</th><th>status</th><th>mean total (graded submissions)</th>
<th>students with written answers still to grade by hand</th></tr>{''.join(rows)}</table></body></html>
""")
    return index
