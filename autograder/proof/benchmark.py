"""How long grading one submission takes: ``python -m autograder benchmark [ASSIGNMENT] [--runs 5]`` (``make
benchmark``).

Grades the assignment's correct example (every check runs) and its untouched release (every check fails fast)
``--runs`` times each, alternating, each as a separate ``python -m autograder grade`` process from a cold start, as
an instructor would run it, and prints the wall-clock seconds per submission: median, min and max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, assignment_ids
from autograder.commands import venv_env
from autograder.proof.submissions import examples

GOAL_SECONDS = 8.0


def time_grade(notebook: Path, assignment: Assignment) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(notebook), "--assignment", assignment.id],
                          cwd=COURSE_ROOT, capture_output=True, text=True, env=venv_env())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"grading {notebook} failed:\n{done.stdout}{done.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", nargs="?", default=None, help="default: the first assignment")
    parser.add_argument("--runs", type=int, default=5, help="runs per notebook (default 5)")
    args = parser.parse_args(argv)
    assignment = Assignment.load(args.assignment or assignment_ids()[0])
    catalog = examples(assignment).EXAMPLES
    print(f"{assignment.id}: grading each notebook {args.runs} times on {os.cpu_count()} CPU cores "
          "(wall seconds per submission, cold start)")
    times: dict[str, list[float]] = {"correct (every check runs)": [], "untouched (every check fails)": []}
    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        notebooks = []
        for name in ("correct", "untouched"):
            path = Path(tmp) / name / assignment.notebook
            catalog[name].write(assignment, path)
            notebooks.append(path)
        for _ in range(args.runs):
            for runs, notebook in zip(times.values(), notebooks, strict=True):
                runs.append(time_grade(notebook, assignment))
    for name, runs in times.items():
        print(f"  {name:<30} median {statistics.median(runs):5.1f} s   min {min(runs):5.1f}   max {max(runs):5.1f}")
    worst = max(statistics.median(runs) for runs in times.values())
    print(f"goal: median <= {GOAL_SECONDS:.0f} s per submission: {'met' if worst <= GOAL_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
