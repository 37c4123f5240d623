"""How long grading one submission takes: ``python -m autograder.benchmark [--runs 5]`` (``make benchmark``).

Grades the solution notebook (every check runs) and the released stub notebook (every check fails fast) ``--runs``
times each, alternating, each as a separate ``python -m autograder grade`` process, as an instructor would run it,
and prints the wall-clock seconds per submission: median, min and max. The goal is a median of at most 20 s on two
CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from autograder.release import venv_env
from dinocourse import REPO_ROOT
from dinocourse.notebook import RELEASE_NOTEBOOK as RELEASE
from dinocourse.notebook import SOLUTION_NOTEBOOK

GOAL_SECONDS = 20.0


def time_grade(notebook) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(notebook)], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=venv_env())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"grading {notebook} failed:\n{done.stdout}{done.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per notebook (default 5)")
    args = parser.parse_args(argv)
    print(f"grading each notebook {args.runs} times on {os.cpu_count()} CPU cores (wall seconds per submission)")
    times: dict[str, list[float]] = {"solution (all checks pass)": [], "released stubs (all checks fail)": []}
    for _ in range(args.runs):
        for runs, notebook in zip(times.values(), (SOLUTION_NOTEBOOK, RELEASE), strict=True):
            runs.append(time_grade(notebook))
    for name, runs in times.items():
        print(f"  {name:<34} median {statistics.median(runs):5.1f} s   min {min(runs):5.1f}   max {max(runs):5.1f}")
    worst = max(statistics.median(runs) for runs in times.values())
    print(f"goal: median <= {GOAL_SECONDS:.0f} s per submission: {'met' if worst <= GOAL_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
