"""Many runs at once: a grid of option values, run as parallel processes on this machine
(``concurrent.futures``) or as jobs of a cluster's scheduler through submitit (``--executor submitit``; its
``--cluster local`` runs them as local processes, ``slurm`` submits them).

    python -m dinolab sweep --from_json configs/random_teacher.json --grid seed=0,1,2,3,4 --jobs 2
    python -m dinolab sweep --from_json configs/random_teacher.json --grid s_init_alpha=0,0.5,1 \\
        --executor submitit --cluster slurm --slurm_partition gpu --timeout_min 120

Every run gets its own folder (``<DINO_RESULTS>/<name>/``) and a share of the CPU's threads; the sweep writes
``<DINO_RESULTS>/sweep-<time>.json`` with each run's folder and final probes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

from dinolab.config import BY_NAME, ConfigError, check, convert, resolve
from dinolab.run import results_root, run, run_name


def grid(items: list[str]) -> list[dict]:
    """``name=v1,v2`` items -> every combination, each value checked."""
    axes = []
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in BY_NAME:
            raise ConfigError(f"--grid {item!r}: expected OPTION=value1,value2,... with a known option")
        axes.append([(name, convert(BY_NAME[name], v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def configs(base: dict, items: list[str], jobs: int) -> list[dict]:
    out = []
    threads = max(1, (os.cpu_count() or 1) // jobs)
    for point in grid(items):
        config = check({**base, **point})
        if base["name"] is None:
            config["name"] = run_name(config)
        else:
            config["name"] = base["name"] + "".join(f"-{k}{v}" for k, v in point.items())
        config["threads"] = config["threads"] or threads
        out.append(config)
    names = [c["name"] for c in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"two runs of the grid would share a folder: {names}; set --name")
    return out


def run_quietly(config: dict) -> str:
    return str(run(config, progress=False))


def final(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    last = metrics[-1]
    return {"folder": str(folder), "student": last.get("student"), "teacher": last.get("teacher"),
            "raw_pixels": metrics[0]["raw_pixels"]}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m dinolab sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", action="append", default=[], metavar="OPTION=V1,V2", help="values of one option "
                   "(repeat for a product grid)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    p.add_argument("--executor", choices=("processes", "submitit"), default="processes")
    p.add_argument("--cluster", choices=("local", "slurm", "debug"), default="local",
                   help="submitit's executor: local processes, slurm jobs, or debug (in this process)")
    p.add_argument("--timeout_min", type=int, default=60, help="submitit: minutes a job may take")
    p.add_argument("--slurm_partition", default=None, help="submitit with slurm: the partition")
    args, rest = p.parse_known_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs: expected a positive number, got {args.jobs}")
    try:
        runs = configs(resolve(rest), args.grid, args.jobs)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(runs)} run(s), {args.jobs} at a time ({args.executor}), {runs[0]['threads']} thread(s) each:")
    for config in runs:
        print(f"  {results_root() / config['name']}")
    start = time.perf_counter()
    if args.executor == "processes":
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            folders = list(pool.map(run_quietly, runs))
    else:
        import submitit

        folder = results_root() / "submitit" / "%j"
        if args.cluster == "slurm":
            executor = submitit.SlurmExecutor(folder=folder)
            executor.update_parameters(time=args.timeout_min, cpus_per_task=runs[0]["threads"],
                                       **({"partition": args.slurm_partition} if args.slurm_partition else {}))
        elif args.cluster == "local":
            executor = submitit.LocalExecutor(folder=folder)
            executor.update_parameters(timeout_min=args.timeout_min)
        else:
            executor = submitit.DebugExecutor(folder=folder)
        jobs = executor.map_array(run_quietly, runs)
        print(f"submitted job(s) {', '.join(j.job_id for j in jobs)}; logs in {results_root() / 'submitit'}")
        folders = [job.result() for job in jobs]
    summary = [{"name": c["name"], **final(Path(f))} for c, f in zip(runs, folders, strict=True)]
    out = results_root() / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"done in {time.perf_counter() - start:.0f} s; per run (student / teacher, k-NN and linear probe):")
    for row in summary:
        s, t = row["student"] or {}, row["teacher"] or {}
        pct = {f"{who}_{key}": 100 * probes.get(key, float("nan")) for who, probes in (("s", s), ("t", t))
               for key in ("knn", "linear")}
        print(f"  {row['name']:<48} k-NN {pct['s_knn']:5.1f} / {pct['t_knn']:5.1f}   "
              f"linear {pct['s_linear']:5.1f} / {pct['t_linear']:5.1f}")
    print(f"summary: {out}")
    return 0
