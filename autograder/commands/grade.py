"""Grade notebooks with the engine, without a course directory or a gradebook.

    python -m autograder grade NOTEBOOK [NOTEBOOK ...] [--assignment ID] [--json OUT] [--timeout S] [--memory MB]

Each notebook is graded exactly as ``python -m autograder autograde`` and ``nbgrader autograde`` grade it (the same
engine: inspected without running, each unit in its own sandboxed process, see
:mod:`autograder.grading.engine`). It prints one line per test cell and the full message of every failure, and
``--json`` writes ``{"notebook", "assignment", "status", "score", "max_score", "tests": {grade_id: {"unit", "kind",
"points", "max_points", "passed", "message"}}}`` (a list of them for several notebooks). The assignment is the one whose
graded cells the notebook has, unless ``--assignment`` names it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, CourseError, assignment_ids, find_assignment
from autograder.commands import add_limit_arguments, limits_of
from autograder.grading.engine import Engine, Settings
from autograder.grading.verdict import Status, Verdict

KEYS = ("notebook", "assignment", "status", "score", "max_score", "tests")


def format_table(result: Verdict, manual: float = 0.0) -> str:
    """A per-test table, then the full message of every failed test."""
    width = max([len(g) for g in result.tests] + [9])
    lines = [f"{'test cell':<{width}}  {'unit':<20}  {'points':>9}  result"]
    for grade_id, t in result.tests.items():
        first = t.message.splitlines()[0] if t.message else ""
        status = "ok  " if t.passed else "FAIL"
        points = f"{t.points:>4g} / {t.max_points:<2g}"
        lines.append(f"{grade_id:<{width}}  {t.unit:<20}  {points}  {status} {first}")
    lines.append(f"{'total':<{width}}  {'':<20}  {result.score:>4g} / {result.max_score:<2g}"
                 + (f"  (+ {manual:g} points graded by hand)" if manual else "") + f"   status: {result.status}")
    for grade_id, t in result.tests.items():
        if not t.passed and len(t.message.splitlines()) > 1:
            lines += ["", f"{grade_id}:", *("  " + line for line in t.message.splitlines())]
    for unit, bugs in result.diagnoses.items():
        lines += ["", f"{unit}: this looks like {'one of these known mistakes' if len(bugs) > 1 else 'a known mistake'}"
                  f": {'; '.join(bugs)}"]
    notes = [*result.problems, *result.tampering, *result.notices]
    if notes:
        lines += ["", "notes:", *(f"  - {note}" for note in notes)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", type=Path, nargs="+", help="the submitted .ipynb file(s)")
    parser.add_argument("--assignment", help="the assignment (default: found from the notebook's graded cells)")
    parser.add_argument("--json", type=Path, help="write the result(s) as JSON to this file")
    add_limit_arguments(parser)
    parser.add_argument("--no-sandbox", action="store_true", help="do not use bubblewrap (resource limits only)")
    parser.add_argument("--root", type=Path, default=COURSE_ROOT, help="the course's folder (default: this one)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"cannot grade: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.json and not _writable(args.json):
        print(f"cannot grade: cannot write the results to {args.json} (its folder is not writable); choose another "
              "--json path", file=sys.stderr)
        return 2
    try:
        root = args.root.resolve()
        assignment = Assignment.load(args.assignment or _guess(args.notebooks[0], root), root)
        engine = Engine(assignment, Settings(limits_of(args),
                                             sandbox=not args.no_sandbox))
    except CourseError as err:
        print(f"cannot grade: {err}", file=sys.stderr)
        return 2
    for warning in engine.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    results = []
    try:
        for path in args.notebooks:
            verdict, _ = engine.grade_file(path)
            verdict.notebook = str(path)
            results.append(verdict)
            if len(args.notebooks) > 1:
                print(f"\n== {path}")
            print(format_table(verdict, verdict.manual_max))
    finally:
        engine.close()
    print(f"graded {len(results)} notebook(s) in {time.perf_counter() - start:.1f} s")
    failed = [r.notebook for r in results if r.status == Status.NOT_GRADED]
    if failed:
        print(f"NOT GRADED (the grader could not grade them; see the notes above): {', '.join(failed)}",
              file=sys.stderr)
    if args.json:
        out = [{k: data[k] for k in KEYS} for data in (r.to_json() for r in results)]
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out[0] if len(out) == 1 else out, indent=2) + "\n")
        except OSError as err:
            print(f"cannot write {args.json} ({err.strerror or err}); the tables above hold every result",
                  file=sys.stderr)
            return 1
    return 1 if failed else 0


def _writable(path: Path) -> bool:
    """Whether ``path`` can be written: its nearest existing folder is writable (and it is no folder itself)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return not path.is_dir() and folder.is_dir() and os.access(folder, os.W_OK) and \
        (not path.exists() or os.access(path, os.W_OK))


def _guess(path: Path, root: Path) -> str:
    """The assignment of a notebook: the folder it lies in (``.../<id>/<notebook>``), else the one whose graded
    cells it has, else the course's only assignment."""
    known = assignment_ids(root)
    if path.resolve().parent.name in known:
        return path.resolve().parent.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        data = {}
    try:
        return find_assignment(data if isinstance(data, dict) else {}, root).id
    except CourseError:
        if len(known) == 1:
            return known[0]
        raise
