"""The main job (`make demo`): run the solution notebook end to end, headless, and summarise what it found.

    python -m dinocourse.demo [--mode quick|tiny|full] [--out build/demo]

By default the notebook runs in quick mode on the embedded sample (set DINO_DATA / DINO_MODE to change that).
Everything it writes lands in ``--out``, which is emptied first: the executed notebook, its figures as PNG, the
checkpoint and ``results/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dinocourse.data import REPO_ROOT, SAMPLE_DIR, default_data_root
from dinocourse.notebook import SOLUTION_NOTEBOOK, NotebookError, execute, save_figures

MARKER = ".dino-demo"  # marks an output folder that the demo may empty
CELL_TIMEOUT = {"tiny": 600, "quick": 3600, "full": 6 * 3600}  # seconds for one cell (training is one cell)


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def format_summary(summary: dict, wall_seconds: float) -> str:
    """A short human-readable report of the notebook's ``summary.json``."""
    knn = summary["knn_accuracy"]
    width = max(len(name) for name in knn)
    lines = [
        f"  data:      {summary['data']} PathMNIST at {_rel(Path(summary['data_root']))} "
        f"({summary['train_images']:,} training images)",
        f"  training:  {summary['epochs']} epoch(s), {summary['steps']} steps of batch {summary['batch_size']} "
        f"on {summary['device']}: {summary['train_seconds']:.0f} s, final loss {summary['final_loss']:.3f}",
        f"  1-NN accuracy on {summary['knn_test_images']:,} test images:",
        *(f"    {name:<{width}}  {100 * acc:5.1f} %" for name, acc in knn.items()),
        "  pseudo-labels used (of the head's output dimensions), on the test images:",
        *(f"    {name:<{width}}  {used:>3} used, the largest holds "
          f"{100 * summary['pseudo_label_largest_share'][name]:.0f} % of the images"
          for name, used in summary["pseudo_labels_used"].items()),
        f"  wall time of the whole notebook: {wall_seconds // 60:.0f} min {wall_seconds % 60:.0f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default=os.environ.get("DINO_MODE", "quick"), choices=["quick", "tiny", "full"],
                        help="the notebook's budget (default: quick, or $DINO_MODE)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "demo", help="output folder (emptied)")
    parser.add_argument("--notebook", type=Path, default=SOLUTION_NOTEBOOK, help="the notebook to run")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            print(f"{out} exists and was not made by this demo; refusing to empty it. Choose another --out.",
                  file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by python -m dinocourse.demo; emptied on its next run\n")
    # full mode uses the notebooks' usual root; quick and tiny use the embedded sample unless DINO_DATA is set
    data_root = str(default_data_root() if args.mode == "full" else os.environ.get("DINO_DATA") or SAMPLE_DIR)
    env = {"DINO_MODE": args.mode, "DINO_RESULTS": str(out / "results"), "DINO_DATA": data_root}
    print(f"Running {_rel(args.notebook)} in {args.mode} mode on {_rel(Path(data_root))}; "
          f"outputs in {_rel(out)}", flush=True)
    start = time.perf_counter()
    executed = out / args.notebook.name
    try:
        nb = execute(args.notebook, out=executed, env=env, cwd=out, timeout=CELL_TIMEOUT[args.mode],
                     log=lambda line: print(line, flush=True))
    except NotebookError as err:
        print(f"\nThe notebook failed; the partly executed notebook is {_rel(executed)}.\n{err}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    figures = save_figures(nb, out / "figures")
    summary = json.loads((out / "results" / "summary.json").read_text())

    print(f"\nDINO on PathMNIST — solution notebook, {args.mode} mode")
    print(format_summary(summary, wall))
    print(f"  executed notebook: {_rel(executed)}")
    print(f"  figures: {', '.join(_rel(f) for f in figures)}")
    print(f"  summary: {_rel(out / 'results' / 'summary.json')}")
    return autograde_examples(out / "course")


def autograde_examples(course: Path) -> int:
    """Grade the bundled example submissions as a class (sandboxed, in parallel) and print the class table."""
    from autograder.examples import DEMO, EXAMPLES, write_class
    from autograder.release import venv_env

    write_class(course, DEMO)
    print(f"\nAutograding {len(DEMO)} example submissions in {_rel(course)} (python -m autograder autograde):")
    for name in DEMO:
        print(f"  {name:<15} {EXAMPLES[name].what}")
    sys.stdout.flush()
    done = subprocess.run([sys.executable, "-m", "autograder", "autograde", "01_dino", "--course", str(course),
                           "--timeout", "60"], env=venv_env(), cwd=REPO_ROOT)
    if done.returncode == 0:
        print(f"Feedback per student: {_rel(course / 'feedback')}/<student>/01_dino/dino.html; class report: "
              f"{_rel(course / 'reports' / '01_dino' / 'report.html')}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
