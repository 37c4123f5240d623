"""Seconds per submission when grading a class, with 1 worker and with N: ``python -m autograder benchmark-class``.

Generates a class of ``--students`` submissions of an assignment (by default 20: its correct, partial and untouched
examples in turn, so each run does the same work), grades it with ``python -m autograder autograde --force`` once
per worker count, side by side in one run, and prints seconds per submission and the speed-up over one worker
(``make benchmark-class``). With ``--submitit`` it also grades the class in jobs of submitit's local executor (one job
per core, one worker each: ``autograde --executor submitit --cluster local``) and says whether every grade equals
the local run's.
"""

from __future__ import annotations

import argparse
import json
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


def time_class(assignment: Assignment, course: Path, workers: int, *extra: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", assignment.id, "--course", str(course),
                           "--root", str(assignment.root), "--workers", str(workers), "--force", "--quiet", *extra],
                          capture_output=True, text=True, env=venv_env(), cwd=COURSE_ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    return time.perf_counter() - start


def grades(assignment: Assignment, course: Path) -> dict[str, tuple]:
    """Every student's status, score and points per test cell (from the result files)."""
    stem = Path(assignment.notebook).stem
    found = {}
    for path in course.glob(f"autograded/*/{assignment.id}/{stem}-autograde.json"):
        verdict = json.loads(path.read_text())
        found[path.parent.parent.name] = (verdict["status"], verdict["score"],
                                          sorted((g, t["points"]) for g, t in verdict["tests"].items()))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", nargs="?", default=None, help="default: the first assignment")
    parser.add_argument("--students", type=int, default=20, help="submissions in the class (default 20)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="worker counts to compare (default: 1 and the number of cores)")
    parser.add_argument("--submitit", action="store_true",
                        help="also grade the class in jobs of submitit's local executor and compare the grades")
    args = parser.parse_args(argv)
    assignment = Assignment.load(args.assignment or assignment_ids()[0])
    print(f"{assignment.id}: {args.students} submissions ({', '.join(MIX)} in turn), {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory(prefix="classbench-") as tmp:
        make_class(assignment, Path(tmp), args.students)
        seconds = {f"{workers} worker(s)": time_class(assignment, Path(tmp), workers) for workers in args.workers}
        if args.submitit:
            local = grades(assignment, Path(tmp))
            jobs = os.cpu_count() or 1
            seconds[f"submitit, {jobs} local job(s) of 1 worker"] = time_class(
                assignment, Path(tmp), 1, "--executor", "submitit", "--cluster", "local")
            differ = sorted(s for s, grade in grades(assignment, Path(tmp)).items() if local.get(s) != grade)
    base = seconds[f"{args.workers[0]} worker(s)"]
    for how, total in seconds.items():
        print(f"  {how}: {total:6.1f} s in all, {total / args.students:5.2f} s per submission, "
              f"speed-up {base / total:4.2f}x over {args.workers[0]} worker(s)")
    if args.submitit:
        print(f"submitit's grades: {'every one equals the local run' if not differ else f'{len(differ)} differ'}"
              f" ({args.students - len(differ)} of {args.students} equal)")
    best = min(total / args.students for total in seconds.values())
    print(f"goal: <= {GOAL_SECONDS:.0f} s per submission: {'met' if best <= GOAL_SECONDS else 'NOT met'}")
    return 1 if args.submitit and differ else 0


if __name__ == "__main__":
    sys.exit(main())
