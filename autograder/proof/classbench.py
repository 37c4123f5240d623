"""Seconds per submission when grading a class, with 1 worker and with N: ``python -m autograder benchmark-class``.

Generates a class of ``--students`` submissions of an assignment (by default 20: its correct, partial and untouched
examples in turn, so each run does the same work), grades it with ``python -m autograder autograde --force`` once
per worker count, side by side in one run, and prints seconds per submission and the speed-up over one worker
(``make benchmark-class``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, assignment_ids
from autograder.commands import venv_env
from autograder.proof.submissions import examples

MIX = ("correct", "partial", "untouched")
GOAL_SECONDS = 3.0  # per submission, with one worker per core


def make_class(assignment: Assignment, course: Path, students: int) -> None:
    catalog = examples(assignment).EXAMPLES
    for i in range(students):
        catalog[MIX[i % len(MIX)]].write(assignment, course / "submitted" / f"student{i:03d}" / assignment.id /
                                           assignment.notebook)


def time_class(assignment: Assignment, course: Path, workers: int) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", assignment.id, "--course", str(course),
                           "--root", str(assignment.root), "--workers", str(workers), "--force", "--quiet"],
                          capture_output=True, text=True, env=venv_env(), cwd=COURSE_ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", nargs="?", default=None, help="default: the first assignment")
    parser.add_argument("--students", type=int, default=20, help="submissions in the class (default 20)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="worker counts to compare (default: 1 and the number of cores)")
    args = parser.parse_args(argv)
    assignment = Assignment.load(args.assignment or assignment_ids()[0])
    print(f"{assignment.id}: {args.students} submissions ({', '.join(MIX)} in turn), {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory(prefix="classbench-") as tmp:
        make_class(assignment, Path(tmp), args.students)
        seconds = {workers: time_class(assignment, Path(tmp), workers) for workers in args.workers}
    base = seconds[args.workers[0]]
    for workers, total in seconds.items():
        print(f"  {workers} worker(s): {total:6.1f} s in all, {total / args.students:5.2f} s per submission, "
              f"speed-up {base / total:4.2f}x over {args.workers[0]} worker(s)")
    best = min(total / args.students for total in seconds.values())
    print(f"goal: <= {GOAL_SECONDS:.0f} s per submission: {'met' if best <= GOAL_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
