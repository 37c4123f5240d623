"""Assignment 2's reference results: the solution notebook itself, run in quick mode on the sample for several seeds
(both arms, every experiment), so that the notebook can show a student's run among runs made with exactly its
settings. No experiment is written twice: each seed is one execution of the notebook, whose ``summary.json`` is kept.

``python -m dinolab.random_teachers_reference [--seeds 0,1,2,3,4] [--jobs 2]`` (``make reference-run``) writes into
``data/reference/random-teachers/``:

    seed-N.json    the run summary of seed N (settings per arm, probes, histories, the experiments (b)-(d))
    MANIFEST.json  md5 of every file above

The notebooks run ``--jobs`` at a time, each with its share of the CPU's threads.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT
from autograder.commands.notebooks import execute
from dinocourse.reference_runs import REFERENCE_DIR, write_manifest

NOTEBOOK = COURSE_ROOT / "solutions" / "02_random_teachers" / "random_teachers.ipynb"
NAME = "random-teachers"


def run_seed(seed: int, threads: int, timeout: int) -> tuple[int, Path, float]:
    """Execute the solution notebook in quick mode with ``seed``; its summary's path and the seconds it took."""
    work = Path(tempfile.mkdtemp(prefix=f"random-teachers-seed{seed}-"))
    env = {"DINO_MODE": "quick", "DINO_SEED": str(seed), "DINO_RESULTS": str(work / "results"),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    execute(NOTEBOOK, out=work / NOTEBOOK.name, env=env, cwd=work, timeout=timeout)
    return seed, work / "results" / "summary.json", time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dinolab.random_teachers_reference",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default: 0,1,2,3,4)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default: 2)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds a notebook's cell may take")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    out = REFERENCE_DIR / NAME
    shutil.rmtree(out, ignore_errors=True)  # the notebooks must not plot the old reference while they make the new
    made = Path(tempfile.mkdtemp(prefix="random-teachers-reference-"))
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for seed, summary, seconds in pool.map(run_seed, seeds, [threads] * len(seeds), [args.timeout] * len(seeds)):
            shutil.copyfile(summary, made / f"seed-{seed}.json")
            shutil.rmtree(summary.parent.parent, ignore_errors=True)
            print(f"seed {seed}: {seconds:.0f} s", flush=True)
    write_manifest(made, sorted(p.name for p in made.glob("seed-*.json")))
    shutil.copytree(made, out)
    out.chmod(0o755)
    shutil.rmtree(made)
    print(f"{len(seeds)} seeds in {time.perf_counter() - start:.0f} s ({args.jobs} at a time, {threads} thread(s) "
          f"each): {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
