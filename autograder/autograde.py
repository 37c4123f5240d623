"""Grade a whole class: ``python -m autograder autograde 01_dino``.

Run from an nbgrader course directory (or pass ``--course DIR``) that holds ``submitted/<student>/01_dino/dino.ipynb``.
For every student it

1. reads the notebook **outside** the sandbox and checks it: a file that is not a notebook (not UTF-8, not JSON,
   not nbformat 4, no cells, another assignment's cells) is ``invalid-notebook``, a missing one ``missing``; test
   cells that were edited, deleted or copied, and changed cell metadata, are ``tampered`` (they are never run: the
   checks come from the instructor's graders, so editing them cannot raise a score);
2. grades every unit of the notebook in the sandbox (:mod:`autograder.sandbox`, :mod:`autograder.worker`), in
   parallel over ``--workers`` submissions, each with ``--timeout`` seconds and ``--memory`` MB;
3. scores the nine test cells from the check results (a visible test cell earns its points when the checks that
   mirror it pass, a hidden one when all the unit's checks pass) and records them in nbgrader's own gradebook
   through nbgrader's own ``autograde`` (with the notebook execution replaced by these scores), so
   ``nbgrader formgrader``/``export`` work as usual and the written answer is graded by hand there;
4. writes ``feedback/<student>/01_dino/dino.html`` (the score per part and every failed check's message, never the
   source of a hidden test) and, at the end, ``reports/01_dino/grades.csv`` and ``reports/01_dino/report.html``.

Rerunning skips every submission already graded by the same graders unless its file changed (``--force`` regrades);
each grade is saved as soon as it is known, so stopping midway loses nothing.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.sandbox import Limits, Sandbox, probe
from autograder.units import UNITS, cells_by_grade_id, nbgrader_meta, part_of, unit_of_test
from autograder.worker import frame
from dinocourse import REPO_ROOT

SEVERITY = ("tampered", "memory", "timeout", "crashed", "ok")  # a submission's status: the first that applies
NOTEBOOK = "dino"
GRADERS_FILES = ("autograder/graders", "autograder/cases.py", "autograder/checks.py", "autograder/runner.py",
                 "autograder/units.py", "autograder/worker.py", "autograder/autograde.py")
RESULT_FILE = "dino-autograde.json"  # next to the autograded notebook


@dataclass
class Assignment:
    """What grading one assignment needs: the instructor's and the student's notebooks and the reference values."""

    name: str
    solution: nbformat.NotebookNode
    release: nbformat.NotebookNode
    values: dict
    tests: dict = field(default_factory=dict)      # grade_id -> (unit, kind, points)
    manual: dict = field(default_factory=dict)     # grade_id -> points of the cells graded by hand
    parts: dict = field(default_factory=dict)      # unit -> title of its part
    references: dict = field(default_factory=dict)  # unit -> the notebook its worker process loads
    fingerprint: str = ""

    @classmethod
    def load(cls, name: str, source: Path, release: Path, values: Path) -> Assignment:
        needed = ((source, "instructor's notebook"), (release, "student notebook"), (values, "reference values"))
        for path, what in needed:
            if not Path(path).is_file():
                raise FileNotFoundError(f"the {what} {path} is missing")
        self = cls(name, nbformat.read(source, as_version=4), nbformat.read(release, as_version=4),
                   json.loads(Path(values).read_text()))
        for index, cell in enumerate(self.solution.cells):
            meta = nbgrader_meta(cell)
            grade_id = meta.get("grade_id")
            if meta.get("grade") and not meta.get("solution"):
                self.tests[grade_id] = (unit_of_test(grade_id), grade_id.rsplit("_", 1)[1], float(meta["points"]))
            elif meta.get("grade") and meta.get("solution"):
                self.manual[grade_id] = float(meta["points"])
            if grade_id in UNITS:
                self.parts[grade_id] = part_of(self.solution, index)
        digest = hashlib.sha256()
        for path in [Path(source), Path(values)] + sorted(
                p for f in GRADERS_FILES for p in ((REPO_ROOT / f).rglob("*.py") if (REPO_ROOT / f).is_dir()
                                                   else [REPO_ROOT / f])):
            digest.update(path.read_bytes())
        self.fingerprint = digest.hexdigest()[:16]
        self.references = {unit: self._reference_for(unit) for unit in UNITS}
        return self

    @property
    def max_score(self) -> float:
        return sum(points for _, _, points in self.tests.values())

    def _reference_for(self, unit: str) -> dict:
        """The solution notebook with ``unit``'s cell replaced by the released stub and written answers removed."""
        released = cells_by_grade_id(self.release)
        nb = copy.deepcopy(self.solution)
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if meta.get("grade_id") == unit:
                cell.source = released[unit].source
            elif meta.get("solution") and cell.cell_type == "markdown":
                cell.source = ""
        return nb


# ---------------------------------------------------------------------------------------------------- inspection
@dataclass
class Inspection:
    status: str | None = None                      # invalid-notebook / missing, when the notebook cannot be graded
    problems: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    cells: dict = field(default_factory=dict)      # unit -> the student's source (None: no such cell)
    answers: dict = field(default_factory=dict)    # grade_id of a hand-graded cell -> the student's text
    sha256: str = ""


def inspect_submission(path: Path, assignment: Assignment) -> Inspection:
    """Read and check a submitted notebook without running any of it."""
    found = Inspection(cells={unit: None for unit in UNITS})
    if not path.is_file():
        found.status = "missing"
        found.problems.append(f"no {path.name} was submitted")
        return found
    raw = path.read_bytes()
    found.sha256 = hashlib.sha256(raw).hexdigest()
    nb = _parse(raw, found)
    if nb is None:
        return found
    released = cells_by_grade_id(assignment.release)
    seen: dict[str, list] = {}
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id") if isinstance(cell.get("metadata"), dict) else None
        if grade_id:
            seen.setdefault(grade_id, []).append(cell)
    if not set(seen) & set(released):
        found.status = "invalid-notebook"
        found.problems.append(
            f"this is not the {assignment.name} notebook: it has none of its graded cells"
            + (f" (its graded cells are {', '.join(sorted(seen)[:5])})" if seen else
               " (it has no graded cells at all)" if nb.cells else " (it has no cells at all)"))
        return found
    for grade_id in sorted(set(seen) - set(released)):
        found.tampering.append(f"a cell claims grade_id {grade_id!r}, which is not part of the assignment")
    for grade_id, original in released.items():
        meta = nbgrader_meta(original)
        copies = seen.get(grade_id, [])
        is_test = not meta.get("solution")
        if not copies:
            if is_test:
                found.tampering.append(f"the test cell {grade_id} was deleted")
            else:
                found.problems.append(f"the cell {grade_id} is missing (deleted, or its metadata changed)")
            continue
        if len(copies) > 1:
            (found.tampering if is_test else found.problems).append(
                f"the cell {grade_id} appears {len(copies)} times" + (" (a copied test cell)" if is_test else
                                                                        "; the first one is graded"))
        cell = copies[0]
        changed = [key for key in ("grade", "solution", "locked", "points", "grade_id")
                   if nbgrader_meta(cell).get(key) != meta.get(key)]
        if changed or cell.cell_type != original.cell_type:
            found.tampering.append(f"the metadata of cell {grade_id} was changed ({', '.join(changed) or 'cell type'})")
        if is_test and cell.source != original.source:
            found.tampering.append(f"the test cell {grade_id} was edited")
        if grade_id in UNITS:
            found.cells[grade_id] = cell.source
        elif grade_id in assignment.manual:
            found.answers[grade_id] = cell.source
    return found


def _parse(raw: bytes, found: Inspection):
    found.status = "invalid-notebook"
    if not raw.strip():
        found.problems.append("the file is empty")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        found.problems.append(f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x} at position {err.start}); "
                              "a notebook is a UTF-8 JSON file: save it again from Jupyter")
        return None
    try:
        data = json.loads(text)
    except ValueError as err:
        found.problems.append(f"the file is not a Jupyter notebook (not JSON: {err}); submit the .ipynb file itself")
        return None
    try:
        with warnings.catch_warnings():  # nbformat warns about (and fixes) duplicated cell ids
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - every schema error means the same to the student
        kind = type(data).__name__
        found.problems.append(f"the file is JSON but not a valid notebook in nbformat 4 ({kind}: "
                              f"{str(err).splitlines()[0][:200]})")
        return None
    found.status = None
    return nb


# ----------------------------------------------------------------------------------------------------- grading
def run_units(inspection: Inspection, assignment: Assignment, sandbox: Sandbox, threads: int) -> tuple[dict, dict]:
    """Grade every unit in the sandbox; returns the worker's event per unit and facts about the run."""
    header = {"units": list(UNITS), "unit_timeout": sandbox.limits.timeout / 4, "threads": threads,
              "protected": [str(p) for p in sandbox.hide]}
    frames = frame(header) + b"".join(
        frame({"unit": unit, "reference": assignment.references[unit],
               "values": {unit: assignment.values[unit]}, "cell": inspection.cells.get(unit)}) for unit in UNITS)
    env = {"PATH": os.defpath, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": str(threads), "MPLBACKEND": "Agg",
           "HOME": "/tmp", "TMPDIR": "/tmp", "XDG_CACHE_HOME": "/tmp", "LC_ALL": "C.UTF-8"}
    outcome = sandbox.run([sys.executable, "-m", "autograder.worker"], stdin=frames, env=env)
    events, garbled, done = {}, 0, False
    for line in outcome.stdout.decode(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            garbled += 1
            continue
        if isinstance(event, dict) and event.get("event") == "unit" and event.get("unit") in UNITS:
            if event["unit"] in events:
                garbled += 1
            events[event["unit"]] = event
        elif isinstance(event, dict) and event.get("event") in ("ready", "done"):
            done = done or event["event"] == "done"
        else:
            garbled += 1
    facts = {"timed_out": outcome.timed_out, "out_of_memory": outcome.out_of_memory,
             "too_many_processes": outcome.too_many_processes, "garbled": garbled, "finished": done,
             "exit_code": outcome.returncode, "seconds": round(outcome.elapsed, 2),
             "stderr": outcome.stderr_tail.decode(errors="replace")[-2000:]}
    return events, facts


def _unit_status(event: dict | None, facts: dict) -> tuple[str, str]:
    """The status of one unit and, when it is not ok, what the student is told."""
    if event is None:
        if facts["timed_out"]:
            return "timeout", "not graded: the submission used up its time limit before this part"
        if facts["out_of_memory"]:
            return "memory", "not graded: the submission ran out of memory before this part"
        if facts["too_many_processes"]:
            return "crashed", "not graded: the submission started too many processes"
        return "crashed", "not graded: the grading process was ended before this part (did your code kill it?)"
    forked = any("os.fork" in n for n in event.get("notices", []))
    if facts["too_many_processes"] and forked:
        return "crashed", "your code for this part started too many processes (the limit stopped it)"
    if event.get("tampered"):
        return "tampered", "not scored: " + "; ".join(event["tampered"])
    if event.get("internal_error"):
        return "crashed", "the grader failed on this part; your instructor has the details"
    if event.get("timed_out"):
        return "timeout", f"your code for this part did not finish within {event['seconds']:.0f} s"
    code = event.get("exit_code")
    if "results" not in event or event.get("garbled"):
        if code == -9 and facts["out_of_memory"]:
            return "memory", "your code for this part used more memory than allowed and was stopped"
        if facts["too_many_processes"]:
            return "crashed", "your code for this part started too many processes and was stopped"
        return "crashed", f"your code ended the grading of this part (exit code {code}); no check could be scored"
    if event.get("memory_error"):
        return "memory", "your code for this part ran out of memory (MemoryError)"
    return "ok", ""


def grade_submission(student: str, path: Path, assignment: Assignment, sandbox: Sandbox, threads: int) -> dict:
    """Inspect, grade and score one student's notebook; returns the JSON-ready result."""
    start = time.monotonic()
    found = inspect_submission(path, assignment)
    result = {"student": student, "assignment": assignment.name, "notebook": str(path), "sha256": found.sha256,
              "grader": assignment.fingerprint, "problems": found.problems, "tampering": list(found.tampering),
              "notices": [], "cells": found.cells, "answers": found.answers, "units": {}, "tests": {}}
    events, facts = ({}, {}) if found.status else run_units(found, assignment, sandbox, threads)
    unit_statuses = []
    for unit in UNITS:
        if found.status:
            status, why, checks = found.status, "; ".join(found.problems), []
        else:
            event = events.get(unit)
            status, why = _unit_status(event, facts)
            checks = (event or {}).get("results", []) if status in ("ok", "tampered") else []
            for key, target in (("tampered", result["tampering"]), ("notices", result["notices"])):
                for text in (event or {}).get(key, []):
                    if text not in target:
                        target.append(text)
            if event and event.get("internal_error"):
                result.setdefault("internal_errors", {})[unit] = event["internal_error"]
        unit_statuses.append(status)
        result["units"][unit] = {"part": assignment.parts.get(unit, unit), "status": status, "message": why,
                                 "checks": checks, "seconds": (events.get(unit) or {}).get("seconds")}
    for grade_id, (unit, kind, points) in assignment.tests.items():
        info = result["units"][unit]
        relevant = [c for c in info["checks"] if c.get("visible")] if kind == "visible" else info["checks"]
        passed = info["status"] == "ok" and bool(relevant) and all(c["passed"] for c in relevant)
        if passed:
            message = ""
        elif info["message"]:
            message = info["message"]
        else:
            failed = [c for c in relevant if not c["passed"]]
            message = "\n".join(f"{c['name']}: {c['message']}" for c in failed) or "no check ran"
        result["tests"][grade_id] = {"unit": unit, "kind": kind, "points": points if passed else 0.0,
                                     "max_points": points, "passed": passed, "message": message}
    if facts.get("garbled"):
        result["tampering"].append(f"the grading process sent {facts['garbled']} message(s) it never writes "
                                   "(forged or duplicated results)")
    if found.status:
        result["status"] = found.status
    elif result["tampering"]:
        result["status"] = "tampered"
    else:
        result["status"] = next(s for s in SEVERITY if s in unit_statuses or s == "ok")
    if facts.get("timed_out") and result["status"] == "ok":
        result["status"] = "timeout"
    result["score"] = sum(t["points"] for t in result["tests"].values())
    result["max_score"] = assignment.max_score
    result["manual_max"] = sum(assignment.manual.values())
    result["seconds"] = round(time.monotonic() - start, 2)
    result["run"] = {k: v for k, v in facts.items() if k != "stderr"}
    if facts.get("stderr") and (not facts.get("finished") or result.get("internal_errors")):
        result["run"]["stderr"] = facts["stderr"]
    return result


# ------------------------------------------------------------------------------------------------------ course
@dataclass
class Course:
    root: Path
    assignment: str
    db_url: str

    def submitted(self) -> Path:
        return self.root / "submitted"

    def students(self) -> list[str]:
        found = {p.name for p in self.submitted().iterdir() if p.is_dir()} if self.submitted().is_dir() else set()
        return sorted(found | set(self._gradebook_students()))

    def submission(self, student: str) -> Path:
        return self.submitted() / student / self.assignment / f"{NOTEBOOK}.ipynb"

    def autograded(self, student: str) -> Path:
        return self.root / "autograded" / student / self.assignment

    def feedback(self, student: str) -> Path:
        return self.root / "feedback" / student / self.assignment / f"{NOTEBOOK}.html"

    def reports(self) -> Path:
        return self.root / "reports" / self.assignment

    @property
    def sqlite_file(self) -> Path | None:
        """The gradebook's file when it is an SQLite database."""
        return Path(self.db_url[len("sqlite:///"):]) if self.db_url.startswith("sqlite:///") else None

    def private_paths(self, source: Path) -> list[Path]:
        """What a submission must not read or write: everything of the course but the released notebooks."""
        paths = [self.root / name for name in ("submitted", "autograded", "feedback", "reports", "gradebook.db",
                                               "source", "solutions", ".git")]
        paths += [source.parent.parent, REPO_ROOT / "solutions", REPO_ROOT / ".git", REPO_ROOT / "gradebook.db",
                  REPO_ROOT / "autograder" / "reference_values.json"]
        if self.sqlite_file:
            paths.append(self.sqlite_file)
        return list(dict.fromkeys(path.resolve() for path in paths))

    def _gradebook_students(self) -> list[str]:
        from nbgrader.api import Gradebook

        if self.sqlite_file and not self.sqlite_file.exists():
            return []
        with Gradebook(self.db_url) as gb:
            return [s.id for s in gb.students]

    def previous(self, student: str) -> dict | None:
        path = self.autograded(student) / RESULT_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def needs_grading(course: Course, student: str, assignment: Assignment) -> bool:
    previous = course.previous(student)
    return not (previous and previous.get("grader") == assignment.fingerprint
                and previous.get("sha256") == _sha256(course.submission(student)))


# --------------------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder autograde", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="the assignment to grade, e.g. 01_dino")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="the nbgrader course directory (default: .)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="submissions graded at once (default: the number of cores)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for one submission (default: 300)")
    parser.add_argument("--memory", type=int, default=4096, help="MB of memory for one submission (default: 4096)")
    parser.add_argument("--force", action="store_true", help="regrade submissions that were graded already")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--db-url", help="the gradebook (default: sqlite:///COURSE/gradebook.db)")
    parser.add_argument("--no-sandbox", action="store_true", help="do not use bubblewrap (resource limits only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no class table")
    args = parser.parse_args(argv)
    from autograder.classreport import print_table, write_feedback, write_reports
    from autograder.gradebook import record

    root = args.course.resolve()
    course = Course(root, args.assignment, args.db_url or f"sqlite:///{root / 'gradebook.db'}")
    source = _source_notebook(root, args.assignment)
    try:
        assignment = Assignment.load(args.assignment, source, REPO_ROOT / "assignments" / args.assignment /
                                     f"{NOTEBOOK}.ipynb", REPO_ROOT / "autograder" / "reference_values.json")
    except FileNotFoundError as err:
        print(f"cannot autograde {args.assignment}: {err}", file=sys.stderr)
        return 2
    students = args.student or course.students()
    if not students:
        print(f"no submissions: expected {course.submitted()}/<student>/{args.assignment}/{NOTEBOOK}.ipynb",
              file=sys.stderr)
        return 2
    limits = Limits(timeout=args.timeout, memory_mb=args.memory)
    sandbox = Sandbox(hide=course.private_paths(source), limits=limits, isolation=probe(not args.no_sandbox))
    for warning in sandbox.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    todo = [s for s in students if args.force or needs_grading(course, s, assignment)]
    workers = max(1, min(args.workers, len(todo) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    if not args.quiet:
        print(f"{args.assignment}: {len(students)} students, {len(todo)} to grade, {len(students) - len(todo)} "
              f"already graded; {workers} worker(s); isolation: {sandbox.isolation.describe()}")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # alembic
    start = time.monotonic()
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=workers) as pool, tempfile.TemporaryDirectory(prefix="dino-stage-") as stage:
        futures = {pool.submit(grade_submission, s, course.submission(s), assignment, sandbox, threads): s
                   for s in todo}
        bar = tqdm(total=len(todo), desc=f"autograde {args.assignment}", unit="nb", disable=args.quiet or None)
        for future in as_completed(futures):
            result = future.result()
            with warnings.catch_warnings():  # nbgrader's SQLAlchemy warns about its own session use
                warnings.simplefilter("ignore")
                record(course, assignment, result, Path(stage), source)
            write_feedback(course.feedback(result["student"]), result)
            course.autograded(result["student"]).mkdir(parents=True, exist_ok=True)
            target = course.autograded(result["student"]) / RESULT_FILE
            target.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
            target.with_suffix(".tmp").replace(target)  # written last: its presence means "graded and recorded"
            bar.set_postfix_str(f"{result['student']}: {result['status']}")
            bar.update()
        bar.close()
    elapsed = time.monotonic() - start
    results = [course.previous(s) or {"student": s, "status": "missing"} for s in students]
    paths = write_reports(course.reports(), results, assignment)
    if not args.quiet:
        print_table(results, assignment)
        if todo:
            print(f"graded {len(todo)} submission(s) in {elapsed:.1f} s ({elapsed / len(todo):.1f} s per submission "
                  f"with {workers} worker(s))")
        print("wrote " + ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths))
    return 0


def _source_notebook(root: Path, assignment: str) -> Path:
    own = root / "solutions" / assignment / f"{NOTEBOOK}.ipynb"
    return own if own.is_file() else REPO_ROOT / "solutions" / assignment / f"{NOTEBOOK}.ipynb"
