"""End to end: the solution notebooks and the demo run headless in the tiny budget."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autograder.commands.notebooks import execute, save_figures
from dinocourse.data import REPO_ROOT

FIGURES = {"samples", "views", "schedules", "health", "knn", "reference-curve", "retrieval", "feature-map",
           "pseudo-labels", "pseudo-label-classes", "pseudo-label-examples"}


def run_demo(*args):
    """`python -m autograder demo 01_dino --env DINO_MODE=tiny ARGS` from the repository root."""
    return subprocess.run([sys.executable, "-m", "autograder", "demo", "01_dino", "--env", "DINO_MODE=tiny",
                           *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)


@pytest.mark.slow
def test_solution_notebook_runs_end_to_end_in_the_tiny_budget(dino, tmp_path):
    nb = execute(dino.solution_path, out=tmp_path / "executed.ipynb", cwd=tmp_path,
                 env={"DINO_MODE": "tiny", "DINO_RESULTS": str(tmp_path / "results")}, log=None)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # test cells print their success line and write nothing to stderr (nbgrader would score 0)
    test_cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    assert len(test_cells) == 9
    for cell in test_cells:
        streams = {o.get("name"): o.get("text", "") for o in cell.outputs if o.output_type == "stream"}
        assert "stderr" not in streams and ("successful" in streams["stdout"] or "passed" in streams["stdout"])
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["budget"].startswith("tiny mode") and summary["epochs"] == 1 and summary["steps"] == 2
    assert [name.split(" (")[0] for name in summary["val_knn"]] == ["raw pixels", "random init", "your run",
                                                                     "reference run"]
    assert summary["test_knn"].keys() == summary["val_knn"].keys() and summary["test_images"] == 64
    assert all(0 <= a <= 1 for split in ("val_knn", "test_knn") for a in summary[split].values())
    assert {p.stem for p in save_figures(nb, tmp_path / "figures")} == FIGURES
    checkpoints = [p.name for p in (tmp_path / "results").glob("*.pth")]
    assert len(checkpoints) == 1 and checkpoints[0].startswith("dino_tiny_sample_")


@pytest.mark.slow
def test_assignment_2_runs_end_to_end_in_the_tiny_budget(tmp_path):
    from autograder.assignment.course import Assignment

    random_teachers = Assignment.load("02_random_teachers")
    nb = execute(random_teachers.solution_path, out=tmp_path / "executed.ipynb", cwd=tmp_path,
                 env={"DINO_MODE": "tiny", "DINO_RESULTS": str(tmp_path / "results")}, log=None)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    test_cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    assert len(test_cells) == 2 * len(random_teachers.units)
    for cell in test_cells:
        streams = {o.get("name"): o.get("text", "") for o in cell.outputs if o.output_type == "stream"}
        assert "stderr" not in streams and ("successful" in streams["stdout"] or "passed" in streams["stdout"])
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert (summary["mode"], list(summary["settings"])) == ("tiny", ["vgg11_bn", "vgg11"])
    assert all(s["epochs"] == 1 for s in summary["settings"].values())
    for encoder, probes in summary["probes"].items():
        assert set(probes) == {"raw pixels", "teacher", "teacher, BN re-estimated", "student"}
        assert all(0 <= a <= 1 for accs in probes.values() for a in accs.values())
        # the student starts as the teacher's copy: before distillation its probes are the teacher's
        history = summary["student_history"][encoder]
        assert {p: history[0][p] for p in ("k-NN", "linear")} == probes["teacher"]
    # without BatchNorm, re-estimating BatchNorm statistics changes nothing
    assert summary["probes"]["vgg11"]["teacher, BN re-estimated"] == summary["probes"]["vgg11"]["teacher"]
    assert set(summary["alpha_sweep"]) == {"0", "1"} and "generation 2" in summary["generations"]
    assert {p.stem for p in save_figures(nb, tmp_path / "figures")} == {
        "batchnorm-statistics", "student-distance", "losses", "knn", "first-epoch", "teacher-vs-student",
        "alpha-sweep", "generations", "noise"}


@pytest.mark.slow
def test_demo_command_runs_the_notebook_prints_its_summary_and_grades_the_examples(tmp_path):
    out = tmp_path / "demo"
    result = run_demo("--out", out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1-NN accuracy" in result.stdout and "raw pixels" in result.stdout
    assert (out / "01_dino" / "dino.ipynb").is_file() and (out / "01_dino" / "results" / "summary.json").is_file()
    assert {p.stem for p in (out / "01_dino" / "figures").glob("*.png")} == FIGURES
    assert "correct" in result.stdout and "16/16" in result.stdout and "invalid-notebook" in result.stdout
    assert (out / "01_dino" / "course" / "reports" / "01_dino" / "report.html").is_file()


def test_demo_reports_a_failing_notebook_clearly(tmp_path):
    import shutil

    from autograder.assignment.course import COURSE_ROOT

    root = tmp_path / "course"
    (root / "solutions" / "broken").mkdir(parents=True)
    shutil.copy(COURSE_ROOT / "pyproject.toml", root / "pyproject.toml")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# Part X", "id": "a"},
             {"cell_type": "code", "metadata": {"nbgrader": {"grade": False, "grade_id": "u", "locked": False,
                                                             "schema_version": 3, "solution": True, "task": False}},
              "execution_count": None, "outputs": [], "source": "raise ValueError('boom')", "id": "b"}]
    (root / "solutions" / "broken" / "broken.ipynb").write_text(json.dumps(
        {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}))
    result = subprocess.run([sys.executable, "-m", "autograder", "demo", "--root", str(root), "--out",
                             str(tmp_path / "out"), "--no-grading"], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=600)
    assert result.returncode == 1
    assert "Part X" in result.stderr and "boom" in result.stderr
    assert (tmp_path / "out" / "broken" / "broken.ipynb").is_file()


def test_demo_never_empties_a_folder_it_did_not_make(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    result = run_demo("--out", tmp_path)
    assert result.returncode == 2 and "refusing" in result.stderr
    assert precious.read_text() == "keep me"
