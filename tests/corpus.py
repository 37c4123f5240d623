"""The corpus the grading tests use: every example submission, every planted bug and every correct alternative of
an assignment, as notebooks, and the three ways of grading them (each run once per test session).

* ``class``: ``python -m autograder autograde`` over a course folder, 2 workers;
* ``grade``: ``python -m autograder grade`` with every notebook in one call;
* ``nbgrader``: plain ``nbgrader generate_assignment`` + ``nbgrader autograde`` with the course's nbgrader_config.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment
from autograder.commands import venv_env
from autograder.grading.verdict import Verdict
from autograder.proof.submissions import examples, from_solution, mutants

# generous: a busy machine must not change a grade; a program cell (definitions only, in the corpus) gets 10 s, so
# an endless loop costs each grading path 10 s, not the default share of the timeout (up to a minute)
TIMEOUT, MEMORY_MB, CELL_SECONDS = 240, 2048, 10
LIMITS = ["--timeout", str(TIMEOUT), "--memory", str(MEMORY_MB), "--cell-timeout", str(CELL_SECONDS)]


@dataclass
class Entry:
    name: str            # the student id in the course folder
    kind: str            # "example", "mutant" or "alternative"
    case: str            # the example's or edit's own name
    unit: str | None     # the unit a mutant or alternative edits
    status: str | None   # the status an example must get
    honest: frozenset    # the units that earn full points (examples: as the correct one does)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def entries(assignment: Assignment) -> list[Entry]:
    out = [Entry(f"ex-{name}", "example", name, None, ex.status, ex.honest)
           for name, ex in examples(assignment).EXAMPLES.items()]
    module = mutants(assignment)
    out += [Entry(f"mut-{slug(name)}", "mutant", name, case[0], "ok", frozenset(assignment.units) - {case[0]})
            for name, case in module.MUTANTS.items()]
    out += [Entry(f"alt-{slug(name)}", "alternative", name, case[0], "ok", frozenset(assignment.units))
            for name, case in module.ALTERNATIVES.items()]
    return out


def cross_path_sample(corpus: list[Entry]) -> list[Entry]:
    """Every example, and the first planted bug and the first correct alternative of each unit."""
    first = {}
    for entry in corpus:
        if entry.kind != "example":
            first.setdefault((entry.kind, entry.unit), entry)
    return [e for e in corpus if e.kind == "example" or first[(e.kind, e.unit)] is e]


def write(assignment: Assignment, course: Path, corpus: list[Entry]) -> dict[str, Path]:
    """Write every entry as ``course/submitted/<name>/<id>/<notebook>``."""
    catalog, module = examples(assignment).EXAMPLES, mutants(assignment)
    paths = {}
    for entry in corpus:
        path = course / "submitted" / entry.name / assignment.id / assignment.notebook
        if entry.kind == "example":
            catalog[entry.case].write(assignment, path)
        else:
            edits = (module.MUTANTS if entry.kind == "mutant" else module.ALTERNATIVES)[entry.case][1:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(from_solution(assignment, edits), indent=1))
        paths[entry.name] = path
    return paths


def run(command: list[str], timeout: int = 3600, cwd: Path = COURSE_ROOT) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, env=venv_env(), cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command[:6])} ... failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def grade_class(assignment: Assignment, course: Path, *extra: str) -> dict[str, dict]:
    """``python -m autograder autograde``: the verdict of every student (from the result files)."""
    run([sys.executable, "-m", "autograder", "autograde", assignment.id, "--course", str(course), "--root",
         str(assignment.root), "--workers", "2", *LIMITS, "--quiet", *extra])
    return class_results(assignment, course)


def class_results(assignment: Assignment, course: Path) -> dict[str, dict]:
    stem = Path(assignment.notebook).stem
    return {p.parent.parent.name: json.loads(p.read_text())
            for p in course.glob(f"autograded/*/{assignment.id}/{stem}-autograde.json")}


def grade_cli(assignment: Assignment, paths: dict[str, Path], out: Path) -> dict[str, dict]:
    """``python -m autograder grade`` with every notebook in one call: the verdict of every notebook."""
    names = list(paths)
    run([sys.executable, "-m", "autograder", "grade", *map(str, paths.values()), "--assignment", assignment.id,
         "--root", str(assignment.root), "--json", str(out), *LIMITS])
    results = json.loads(out.read_text())
    results = results if isinstance(results, list) else [results]
    return dict(zip(names, results, strict=True))


def grade_nbgrader(assignment: Assignment, course: Path) -> dict[str, dict[str, float]]:
    """Plain nbgrader with the course's configuration: points per test cell of every student (gradebook)."""
    from nbgrader.api import Gradebook, MissingEntry

    source = course / "solutions" / assignment.id
    source.mkdir(parents=True, exist_ok=True)
    shutil.copy(assignment.solution_path, source / assignment.notebook)
    options = [f"--CourseDirectory.root={course}", f"--CourseDirectory.db_url=sqlite:///{course}/gradebook.db"]
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    run([nbgrader, "generate_assignment", assignment.id, "--force", *options])
    # every notebook is recorded, also one that is no notebook or whose metadata nbgrader's own checks refuse
    done = run([nbgrader, "autograde", assignment.id, "--create", f"--GradeWithEngine.timeout={TIMEOUT}",
                f"--GradeWithEngine.memory_mb={MEMORY_MB}", f"--GradeWithEngine.cell_timeout={CELL_SECONDS}", *options])
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    stem = Path(assignment.notebook).stem
    points = {}
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        for student in (p.name for p in (course / "submitted").iterdir()):
            points[student] = {}
            for grade_id in assignment.tests:
                try:
                    grade = gb.find_grade(grade_id, stem, assignment.id, student)
                    points[student][grade_id] = float(grade.auto_score or 0.0)
                except MissingEntry:
                    points[student][grade_id] = 0.0
    return points


def points_per_test(verdict: dict) -> dict[str, float]:
    return {grade_id: float(test.points) for grade_id, test in Verdict.from_json(verdict).tests.items()}


def unit_points(verdict: dict) -> dict[str, float]:
    """Points earned per unit of a verdict read from JSON (:meth:`Verdict.unit_points`, the reports' own)."""
    return {unit: float(points) for unit, (points, _) in Verdict.from_json(verdict).unit_points().items()}
