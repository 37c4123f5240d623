"""Run one unit's graders from inside a notebook, against the student's live objects.

A hidden test cell holds one call, ``autograder.check("dino_loss")``. The call

* puts the reference's definitions in place of every other name of the assignment for the duration of the checks
  (so only this unit is graded, see :mod:`autograder.units`) and restores the student's names afterwards;
* runs the unit's pytest module from :mod:`autograder.graders` with fixed seeds, and leaves the notebook's random
  state, warning filters and printed output untouched (nothing reaches stderr, which nbgrader scores as a failure);
* prints one line per check and, if any failed, raises :class:`GradingFailure`, whose traceback in the notebook is
  just the report: what was expected, what was got, which part to revisit.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import random
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.checks import CheckFailed
from autograder.units import UNITS, GradingError, Namespace, quiet, reference

GRADERS = Path(__file__).with_name("graders")
# frames that are not the student's (besides installed packages): the autograder, the course package, the reference
OUR_CODE = (str(Path(__file__).parent), str(Path(__file__).parent.parent / "dinocourse"), "<reference ", "<frozen ")


class GradingFailure(AssertionError):
    """Some checks of a unit failed. In a notebook it shows only its message (IPython's ``_render_traceback_``)."""

    def _render_traceback_(self):
        return str(self).splitlines()


@dataclass
class Result:
    name: str       # the check's title (first line of its docstring, with the parameters)
    passed: bool
    message: str    # why it failed ('' when it passed)
    visible: bool = False  # the check mirrors the unit's visible test cell (marked ``@pytest.mark.visible``)


def _title(item) -> str:
    doc = (item.function.__doc__ or item.name).strip().splitlines()[0].rstrip(".")
    params = getattr(item, "callspec", None)
    return f"{doc} [{', '.join(f'{v}' for v in params.params.values())}]" if params else doc


def _student_line(tb) -> str:
    """Where in the student's code an exception was raised (the innermost frame that is not ours or torch's)."""
    for frame in reversed(traceback.extract_tb(tb)):
        if frame.filename and not frame.filename.startswith(OUR_CODE) and "site-packages" not in frame.filename:
            line = (frame.line or "").strip()
            line = "" if line.startswith("raise ") else line[:100]  # the message already says what was raised
            where = f"in {frame.name}" if frame.name not in ("<module>", "") else "in your cell"
            return f" ({where}, line {frame.lineno}{': ' + line if line else ''})"
    return ""


def explain(excinfo) -> str:
    """A one-paragraph message for a failed check, without our traceback."""
    err = excinfo.value
    if isinstance(err, (CheckFailed, GradingError)):
        return str(err)
    if isinstance(err, AssertionError) and str(err):
        return str(err).split("\nassert ")[0]
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"your code raised {type(err).__name__}{': ' + text if text else ''}{_student_line(excinfo.tb)}"


class _Collector:
    """pytest plugin: hands the live namespace to the graders and records one result per check."""

    def __init__(self, namespace: Namespace):
        self._namespace = namespace
        self.results: dict[str, Result] = {}

    def live_namespace(self, unit):
        return self._namespace

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        name, visible = _title(item), item.get_closest_marker("visible") is not None
        if report.failed:  # the first failing phase (setup or call) explains the failure
            if name not in self.results or self.results[name].passed:
                message = explain(call.excinfo) if call.excinfo else report.longreprtext
                self.results[name] = Result(name, False, message, visible)
        elif report.when == "call":
            self.results.setdefault(name, Result(name, True, "", visible))


def run_graders(unit: str, *plugins) -> int:
    """Run the unit's pytest module quietly with ``plugins``; returns pytest's exit code."""
    args = [str(GRADERS / f"test_{unit}.py"), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--capture=no", "-o", "addopts=", "--rootdir", str(GRADERS.parent.parent), "-W", "ignore"]
    return pytest.main(args, plugins=list(plugins))


@contextlib.contextmanager
def _substituted(names: dict, replacements: dict):
    """Temporarily set ``names[k] = v`` for every replacement; restore (or remove) afterwards."""
    missing = object()
    saved = {k: names.get(k, missing) for k in replacements}
    names.update(replacements)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                names.pop(key, None)
            else:
                names[key] = value


@contextlib.contextmanager
def _isolated():
    """Keep the caller's random state, warning filters, grad mode, output and stderr file descriptor unchanged."""
    py_state, np_state = random.getstate(), np.random.get_state()
    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    try:
        saved_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)  # C-level warnings of libraries would reach the cell's stderr: drop them
        os.close(devnull)
    except OSError:
        saved_fd = None
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), quiet():
            warnings.simplefilter("ignore")
            yield
    finally:
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_grad_enabled(grad)
        torch.set_num_threads(threads)


def _silent_tqdm(*args, **kwargs):
    """tqdm without a progress bar (a notebook bar would be a widget in the test cell's output)."""
    from tqdm.std import tqdm

    return tqdm(*args, **{**kwargs, "disable": True})


def grade_unit(unit: str, names: dict, plugins=()) -> tuple[str, list[Result]]:
    """Run the graders of ``unit`` against the live definitions in ``names``; returns the part and the results.

    ``plugins`` are further pytest plugins (the class-grading worker adds a guard that checks after every check
    that the graders were not modified).
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; the units are {', '.join(UNITS)}")
    ref = reference()
    part = ref.parts[unit]
    collector = _Collector(Namespace(names, unit, part))
    with _isolated(), _substituted(names, {**ref.others(unit), "tqdm": _silent_tqdm}):
        torch.set_grad_enabled(True)
        code = run_graders(unit, collector, *plugins)
    results = list(collector.results.values())
    if code not in (0, 1) or not results:  # pytest itself failed: a usage error or no test collected
        results.append(Result("the graders ran", False, f"pytest exited with code {code}; report this to your "
                              "instructor"))
    return part, results


def format_report(unit: str, part: str, results: list[Result]) -> str:
    """One line per check; failed checks with the same message share it (listing at most three of them)."""
    failed = [r for r in results if not r.passed]
    head = (f"{part}: all {len(results)} checks of `{unit}` passed" if not failed else
            f"{part}: {len(failed)} of {len(results)} checks of `{unit}` failed")
    lines = [head]
    for r in results:
        if r.passed:
            lines.append(f"  ok   {r.name}")
    groups: dict[str, list[str]] = {}
    for r in failed:
        groups.setdefault(r.message, []).append(r.name)
    for message, names in groups.items():
        shown = names if len(names) <= 3 else names[:2] + [f"... and {len(names) - 2} more checks"]
        lines += [f"  FAIL {name}" for name in shown]
        lines += [f"       -> {line}" if i == 0 else f"          {line}" for i, line in enumerate(message.splitlines())]
    if failed:
        lines.append(f"Revisit {part}, fix the code of `{unit}` and run its cell and this test cell again.")
    return "\n".join(lines)


def check(unit: str, names: dict | None = None) -> None:
    """Grade ``unit`` in the calling notebook (its globals, unless ``names`` is given); raise if a check fails."""
    if names is None:
        names = inspect.currentframe().f_back.f_globals
    part, results = grade_unit(unit, names)
    report = format_report(unit, part, results)
    if any(not r.passed for r in results):
        raise GradingFailure(report)
    print(report)
