"""End to end: the solution notebook and the demo run headless in the tiny budget."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from dinocourse.data import REPO_ROOT
from dinocourse.notebook import SOLUTION_NOTEBOOK as SOLUTION
from dinocourse.notebook import execute, save_figures

FIGURES = {"samples", "views", "schedules", "loss", "knn", "pseudo-labels"}


def run_demo(*args):
    """`python -m dinocourse.demo --mode tiny ARGS` from the repository root."""
    return subprocess.run([sys.executable, "-m", "dinocourse.demo", "--mode", "tiny", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)


@pytest.mark.slow
def test_solution_notebook_runs_end_to_end_in_the_tiny_budget(tmp_path):
    nb = execute(SOLUTION, out=tmp_path / "executed.ipynb", cwd=tmp_path,
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
    assert summary["mode"] == "tiny" and summary["data"] == "sample" and summary["epochs"] == 1
    assert set(summary["knn_accuracy"]) == {"raw pixels", "random-init ViT (untrained teacher)",
                                            "DINO teacher (trained)"}
    assert all(0 <= a <= 1 for a in summary["knn_accuracy"].values())
    assert {p.stem for p in save_figures(nb, tmp_path / "figures")} == FIGURES
    assert [p.name for p in (tmp_path / "results").glob("*.pth")] == ["dino_tiny_sample_out256_views2+2_seed0.pth"]


@pytest.mark.slow
def test_demo_command_runs_and_prints_a_summary(tmp_path):
    out = tmp_path / "demo"
    result = run_demo("--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1-NN accuracy" in result.stdout and "raw pixels" in result.stdout
    assert (out / "dino.ipynb").is_file() and (out / "results" / "summary.json").is_file()
    assert {p.stem for p in (out / "figures").glob("*.png")} == FIGURES


def test_demo_reports_a_failing_notebook_clearly(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Part X"),
                                         nbformat.v4.new_code_cell("raise ValueError('boom')")])
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    result = run_demo("--notebook", path, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert "Part X" in result.stderr and "boom" in result.stderr
    assert (tmp_path / "out" / "broken.ipynb").is_file()


def test_demo_never_empties_a_folder_it_did_not_make(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    result = run_demo("--out", tmp_path)
    assert result.returncode == 2 and "refusing" in result.stderr
    assert precious.read_text() == "keep me"
