"""Grade one notebook the way ``nbgrader autograde`` does, without a course directory or a gradebook.

    python -m autograder grade NOTEBOOK [--json OUT] [--timeout SECONDS]

Like nbgrader, it puts back the source of every test cell (hidden tests included) and of every locked cell from
the instructor's notebook, matched by ``grade_id``, clears the outputs, runs the notebook in a fresh kernel with
``NBGRADER_EXECUTION=autograde`` (so the notebook picks its grading budget) and continues after errors, then
scores every test cell with nbgrader's own rule (:func:`nbgrader.utils.determine_grade`: an error or any output on
stderr scores zero). A test cell that never ran (the kernel died, or a cell timed out) scores zero too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.utils import determine_grade

from autograder.units import nbgrader_meta, unit_of_test
from dinocourse.notebook import SOLUTION_NOTEBOOK, NotebookError, execute

ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_TIMEOUT = 300  # seconds for one cell; the whole grading budget is far below this


class SubmissionError(Exception):
    """The file cannot be graded at all (not a notebook); the message says what was found."""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - json, encoding and schema errors all mean "not a notebook"
        raise SubmissionError(f"{path} is not a Jupyter notebook (expected an .ipynb file in nbformat 4): "
                              f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}") from None


def graded_test_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """The autograded test cells of the instructor's notebook, by grade_id."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}


def restore(submission, source) -> None:
    """Overwrite test cells and locked cells of the submission with the source's (as nbgrader's OverwriteCells)."""
    originals = {}
    for c in source.cells:
        meta = nbgrader_meta(c)
        if meta.get("grade_id") and not meta.get("solution") and (meta.get("locked") or meta.get("grade")):
            originals[meta["grade_id"]] = c
    for cell in submission.cells:
        original = originals.get(nbgrader_meta(cell).get("grade_id"))
        if original is not None:
            cell.cell_type = original.cell_type
            cell.source = original.source
            cell.metadata["nbgrader"] = dict(nbgrader_meta(original))
            if cell.cell_type == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)


def _message(cell) -> str:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            text = out.get("evalue", "")
            return ANSI.sub("", text if out.get("ename") == "GradingFailure" else f"{out.get('ename')}: {text}")
        if out.output_type == "stream" and out.get("name") == "stderr":
            return ("the test cell wrote to stderr, which scores zero: "
                    + ANSI.sub("", out.get("text", "")).strip()[:500])
    printed = [out.get("text", "") for out in cell.get("outputs", [])
               if out.output_type == "stream" and out.get("name") == "stdout"]
    lines = "".join(printed).strip().splitlines()
    return lines[0] if lines else ""


def grade_notebook(path: Path, source: Path = SOLUTION_NOTEBOOK, timeout: int = CELL_TIMEOUT,
                   executed: Path | None = None) -> dict:
    """Grade the notebook at ``path``; returns the JSON-ready result (see the module's docstring)."""
    submission = read_notebook(path)
    original = nbformat.read(Path(source), as_version=4)
    expected = graded_test_cells(original)
    restore(submission, original)
    for cell in submission.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    failure = ""
    with tempfile.TemporaryDirectory(prefix="dino-grade-") as tmp:
        work = Path(tmp) / "submission.ipynb"
        nbformat.write(submission, work)
        try:
            submission = execute(work, out=work, cwd=Path(tmp), timeout=timeout, log=None, allow_errors=True,
                                 env={"NBGRADER_EXECUTION": "autograde", "DINO_RESULTS": str(Path(tmp) / "results")})
        except NotebookError as err:
            failure = str(err).splitlines()[-1]
            submission = nbformat.read(work, as_version=4)
        if executed is not None:
            nbformat.write(submission, executed)
    found = graded_test_cells(submission)
    tests = {}
    for grade_id, cell in expected.items():
        unit, max_points = unit_of_test(grade_id), float(nbgrader_meta(cell)["points"])
        got = found.get(grade_id)
        if got is None:
            points, message = 0.0, "this test cell is missing from the notebook (deleted, or its metadata changed)"
        elif got.get("execution_count") is None:
            points, message = 0.0, f"this test cell never ran: {failure or 'the notebook stopped before it'}"
        else:
            points, _ = determine_grade(got)
            points, message = float(points or 0.0), _message(got)
        tests[grade_id] = {"unit": unit, "points": points, "max_points": max_points,
                           "passed": points == max_points, "message": message}
    return {"notebook": str(path), "score": sum(t["points"] for t in tests.values()),
            "max_score": sum(t["max_points"] for t in tests.values()), "tests": tests}


def manual_points(source: Path = SOLUTION_NOTEBOOK) -> float:
    nb = nbformat.read(Path(source), as_version=4)
    return sum(float(nbgrader_meta(c).get("points", 0)) for c in nb.cells
               if nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution"))


def format_table(result: dict, manual: float = 0.0) -> str:
    """A per-test table, then the full message of every failed test."""
    width = max(len(g) for g in result["tests"]) if result["tests"] else 10
    lines = [f"{'test cell':<{width}}  {'unit':<20}  {'points':>9}  result"]
    for grade_id, t in result["tests"].items():
        first = t["message"].splitlines()[0] if t["message"] else ""
        status = "ok  " if t["passed"] else "FAIL"
        points = f"{t['points']:>4g} / {t['max_points']:<2g}"
        lines.append(f"{grade_id:<{width}}  {t['unit']:<20}  {points}  {status} {first}")
    lines.append(f"{'total':<{width}}  {'':<20}  {result['score']:>4g} / {result['max_score']:<2g}"
                 + (f"  (+ {manual:g} points graded by hand)" if manual else ""))
    for grade_id, t in result["tests"].items():
        if not t["passed"] and len(t["message"].splitlines()) > 1:
            lines += ["", f"{grade_id}:", *("  " + line for line in t["message"].splitlines())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path, help="the submitted .ipynb")
    parser.add_argument("--json", type=Path, help="write the result as JSON to this file")
    parser.add_argument("--source", type=Path, default=SOLUTION_NOTEBOOK, help="the instructor's notebook")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds for one cell (default: 300)")
    parser.add_argument("--executed", type=Path, help="also save the executed notebook here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        result = grade_notebook(args.notebook, args.source, args.timeout, args.executed)
    except SubmissionError as err:
        print(f"cannot grade: {err}", file=sys.stderr)
        return 2
    print(format_table(result, manual_points(args.source)))
    print(f"graded in {time.perf_counter() - start:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
