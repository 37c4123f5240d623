"""Assignment 2's shipped reference results (``data/reference/random-teachers``): complete, made with the settings the
notebook runs today (else they are out of date: ``make reference-run``), and the numbers its model answers quote are
the shipped ones."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

from autograder.assignment.course import Assignment, cells_by_grade_id, source_of
from autograder.runtime.definitions import load_definitions
from dinocourse import reference_runs
from dinocourse.distillation import PROBES

NAME = "random-teachers"


@pytest.fixture(scope="module")
def seeds():
    return reference_runs.load_seeds(NAME)


@pytest.fixture(scope="module")
def assignment():
    return Assignment.load("02_random_teachers")


def test_five_seeds_ship_with_every_experiment(seeds):
    assert [r["seed"] for r in seeds] == [0, 1, 2, 3, 4]
    for run in seeds:
        assert (run["mode"], run["data"]) == ("quick", "sample")
        assert set(run["probes"]) == {"vgg11_bn", "vgg11"}
        for rows in run["probes"].values():
            assert set(rows) == {"raw pixels", "teacher", "teacher, BN re-estimated", "student"}
            assert all(0 < rows[name][p] < 1 for name in rows for p in PROBES)
        assert {"alpha_sweep", "generations", "noise_inputs"} <= set(run)


def test_the_reference_was_made_with_the_notebooks_quick_settings(seeds, assignment):
    """Each seed's settings per arm are exactly what the solution notebook's setup gives in quick mode for that
    seed: a change of the notebook's settings makes the shipped reference out of date."""
    for run in seeds:
        with contextlib.redirect_stdout(io.StringIO()):
            module = load_definitions(assignment.solution_path, env={"DINO_MODE": "quick",
                                                                      "DINO_SEED": str(run["seed"])},
                                      name=f"reference_check_{run['seed']}")
        expected = {encoder: settings.as_dict() for encoder, settings in module.ARMS.items()}
        assert run["settings"] == expected, (f"seed {run['seed']}: the shipped reference is out of date; run "
                                             "make reference-run")


def _quoted(text: str) -> list[str]:
    return re.findall(r"\d+\.\d ± \d+\.\d", text)


def _spreads(seeds) -> set[str]:
    """Every mean ± sd (in %, one decimal) the reference gives, over any table of per-seed accuracies."""
    tables = []
    for encoder in seeds[0]["probes"]:
        tables += [[r["probes"][encoder][name] for r in seeds] for name in seeds[0]["probes"][encoder]]
    tables += [[r["alpha_sweep"][a][when] for r in seeds] for a in seeds[0]["alpha_sweep"] for when in ("start",
                                                                                                         "end")]
    tables += [[r[key][name] for r in seeds] for key in ("generations", "noise_inputs") for name in seeds[0][key]]
    out = set()
    for table in tables:
        for probe in PROBES:
            values = 100 * np.array([row[probe] for row in table])
            out.add(f"{values.mean():.1f} ± {values.std(ddof=1):.1f}")
    return out


def test_the_model_answers_quote_the_shipped_reference(seeds, assignment):
    spreads = _spreads(seeds)
    quoted = {grade_id: _quoted(source_of(cell)) for grade_id, cell in cells_by_grade_id(assignment.solution).items()
              if grade_id in assignment.manual}
    assert sum(len(q) for q in quoted.values()) >= 6, quoted
    wrong = {g: [q for q in qs if q not in spreads] for g, qs in quoted.items()}
    assert not any(wrong.values()), f"quoted but not what the shipped reference gives: {wrong}"
