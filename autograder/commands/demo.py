"""The main job (``make demo``): run each assignment's solution notebook end to end, then grade example submissions.

    python -m autograder demo [ASSIGNMENT ...] [--env NAME=VALUE ...] [--out build/demo]

For every assignment (default: all), in ``--out/<id>/`` (emptied first, only if the demo made it):

1. the solution notebook runs headless in a fresh kernel with the ``--env`` variables (``make demo`` picks the
   notebooks' quick budget), its working folder being that folder: the executed notebook, its figures as PNG
   (cells tagged ``figure-NAME``) and whatever the notebook writes (checkpoints, ``results/``) land there, and what
   its ``summary`` cell prints is shown;
2. the assignment's demo examples (``DEMO`` in its ``examples.py``: a correct one, a partly wrong one, hostile and
   broken ones) are graded as a class with ``python -m autograder autograde`` and the class table is printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, CourseError, assignment_ids
from autograder.commands.notebooks import NotebookError, execute, save_figures

MARKER = ".course-demo"  # marks an output folder that the demo may empty


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _printed(nb, tag: str) -> str:
    """What the cells tagged ``tag`` printed."""
    return "".join(out.get("text", "") for cell in nb.cells if tag in cell.metadata.get("tags", [])
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream"
                   and out.get("name") == "stdout")


def prepare(out: Path) -> int:
    """Empty ``out`` for a new run, unless it holds something the demo did not make."""
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            print(f"{out} exists and was not made by this demo; refusing to empty it. Choose another --out.",
                  file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by python -m autograder demo; emptied on its next run\n")
    return 0


def run_notebook(assignment: Assignment, out: Path, env: dict[str, str], timeout: int) -> int:
    notebook = assignment.solution_path
    print(f"Running {_rel(notebook)} ({', '.join(f'{k}={v}' for k, v in env.items()) or 'its defaults'}); "
          f"outputs in {_rel(out)}", flush=True)
    start = time.perf_counter()
    executed = out / notebook.name
    try:
        nb = execute(notebook, out=executed, env=env, cwd=out, timeout=timeout, log=lambda line: print(line,
                                                                                                      flush=True))
    except NotebookError as err:
        print(f"\nThe notebook failed; the partly executed notebook is {_rel(executed)}.\n{err}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    figures = save_figures(nb, out / "figures")
    print(f"\n{assignment.id}: the solution notebook ran in {wall // 60:.0f} min {wall % 60:.0f} s")
    print(_printed(nb, "summary").rstrip())
    print(f"  executed notebook: {_rel(executed)}")
    print(f"  figures: {', '.join(_rel(f) for f in figures)}")
    return 0


def grade_examples(assignment: Assignment, course: Path) -> int:
    """Grade the assignment's demo examples as a class (sandboxed, in parallel) and print the class table."""
    from autograder.commands import venv_env
    from autograder.proof.submissions import examples, write_class

    module = examples(assignment)
    write_class(assignment, course, module.DEMO)
    print(f"\nAutograding {len(module.DEMO)} example submissions in {_rel(course)} (python -m autograder autograde):")
    for name in module.DEMO:
        print(f"  {name:<15} {module.EXAMPLES[name].what}")
    sys.stdout.flush()
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", assignment.id, "--course", str(course),
                           "--root", str(assignment.root), "--timeout", "120"], env=venv_env(), cwd=COURSE_ROOT)
    if done.returncode == 0:
        stem = Path(assignment.notebook).stem
        print(f"Feedback per student: {_rel(course / 'feedback')}/<student>/{assignment.id}/{stem}.html; "
              f"class report: {_rel(course / 'reports' / assignment.id / 'report.html')}")
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="assignment ids (default: every assignment)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable for the notebooks (repeatable)")
    parser.add_argument("--out", type=Path, default=COURSE_ROOT / "build" / "demo", help="output folder (emptied)")
    parser.add_argument("--root", type=Path, default=COURSE_ROOT, help="the course's folder")
    parser.add_argument("--cell-timeout", type=int, default=3600, help="seconds one cell may take (default 3600)")
    parser.add_argument("--no-grading", action="store_true", help="only run the notebooks")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env if "=" in item)
    out = args.out.resolve()
    if prepare(out):
        return 2
    try:
        assignments = [Assignment.load(aid, args.root.resolve()) for aid in args.assignments or
                       assignment_ids(args.root.resolve())]
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for assignment in assignments:
        folder = out / assignment.id
        folder.mkdir()
        code = run_notebook(assignment, folder, env, args.cell_timeout)
        if code == 0 and not args.no_grading:
            code = grade_examples(assignment, folder / "course")
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
