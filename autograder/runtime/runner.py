"""Run one unit's graders against live definitions, and explain what failed.

:func:`grade_unit` is what grades a unit, in a grading process of the engine (:mod:`autograder.worker.process`) and, for
feedback only, inside an instructor's kernel (:func:`autograder.check`). It

* puts the reference's definitions in place of every other name of the assignment for the duration of the checks
  (so only this unit is graded, see :mod:`autograder.runtime.definitions`) and restores the student's names afterwards;
* runs the unit's pytest module (``autograder/graders/<assignment>/test_<unit>.py``) with fixed seeds, and leaves
  the random state, warning filters, grad mode and printed output of the caller untouched;
* returns one :class:`Result` per check, whose message says what was expected and what was got, and whether an
  exception came from the student's own lines or from given code (and then what it was).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import linecache
import os
import random
import re
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder import COURSE_ROOT
from autograder.runtime.checks import CheckFailed
from autograder.runtime.definitions import Definitions, GradingError, Namespace, quiet

FRAMEWORK = str(COURSE_ROOT / "autograder")
START, END = "### START CODE HERE ###", "### END CODE HERE ###"
MESSAGE_LINES, MESSAGE_CHARS = 8, 900  # how much of an exception's own message a student sees
# plugins a grading run does not need; unraisableexception alone costs two full gc.collect() per run
PYTEST_OFF = ("cacheprovider", "randomly", "unraisableexception", "threadexception", "junitxml", "pastebin",
              "doctest", "legacypath", "nose", "logging", "setuponly", "setupplan", "stepwise", "debugging")


class GradingFailure(AssertionError):
    """Some checks of a unit failed. In a notebook it shows only its message (IPython's ``_render_traceback_``)."""

    def _render_traceback_(self):
        return str(self).splitlines()


@dataclass
class Result:
    name: str       # the check's title (first line of its docstring, with the parameters)
    passed: bool
    message: str    # why it failed ('' when it passed)


def _title(item) -> str:
    doc = (item.function.__doc__ or item.name).strip().splitlines()[0].rstrip(".")
    params = getattr(item, "callspec", None)
    return f"{doc} [{', '.join(f'{v}' for v in params.params.values())}]" if params else doc


# ------------------------------------------------------------------------------------ who wrote the failing line
def student_lines(source: str) -> set[int] | None:
    """The line numbers of a cell the student wrote: between START and END CODE HERE, or every line (None) when
    the cell has no such markers (a cell the student added)."""
    lines, inside, found = set(), False, False
    for number, line in enumerate(source.splitlines(), start=1):
        if START in line:
            inside, found = True, True
        elif END in line:
            inside = False
        elif inside:
            lines.add(number)
    return lines if found else None


def register_source(filename: str, source: str) -> None:
    """Make a cell's source known to tracebacks (linecache), as a kernel does for its cells."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


TEST_CELL = "<the visible test"  # how the engine names a visible test cell it runs


def _origin(filename: str, lineno: int) -> str:
    """'student', 'given' (the notebook's given code or the reference's), 'test' (a visible test cell's code) or
    'library' (anything installed, and the grader's own code)."""
    if filename.startswith("<reference"):
        return "given"
    if filename.startswith(TEST_CELL):
        return "test"
    if (filename.startswith(("<frozen", FRAMEWORK)) or "site-packages" in filename or "dist-packages" in filename
            or filename.startswith(str(COURSE_ROOT / "dinocourse")) or not linecache.getlines(filename)):
        return "library"
    lines = student_lines("".join(linecache.getlines(filename)))
    return "student" if lines is None or lineno in lines else "given"


def _where(frame) -> str:
    line = (frame.line or "").strip()
    line = "" if line.startswith("raise ") else line[:100]  # the message already says what was raised
    name = f"in {frame.name}" if frame.name not in ("<module>", "") else "in the cell"
    return f"{name}, line {frame.lineno}{': ' + line if line else ''}"


def exception_text(err: BaseException) -> str:
    """The exception's own message, several lines of it (torch puts its clue after the first line), and its cause."""
    lines = [line.rstrip() for line in str(err).strip().splitlines() if line.strip()]
    text = "\n".join(lines[:MESSAGE_LINES]) + ("\n..." if len(lines) > MESSAGE_LINES else "")
    text = text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + " ..."
    cause = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    if cause is not None and not isinstance(cause, (CheckFailed, GradingError)):
        text += f"\n(caused by {type(cause).__name__}: {' '.join(str(cause).split())[:300]})"
    return f"{type(err).__name__}{': ' + text if text else ''}"


def describe_exception(err: BaseException, tb) -> str:
    """Who raised it: the student's lines, or given code (named, with the student's call that led there)."""
    frames = [f for f in reversed(traceback.extract_tb(tb))
              if f.filename and _origin(f.filename, f.lineno) != "library"]
    text = exception_text(err)
    if frames and _origin(frames[0].filename, frames[0].lineno) == "test":
        return text  # the test's own assertion, or a name the test needs that is missing
    frames = [f for f in frames if _origin(f.filename, f.lineno) != "test"]
    if not frames or _origin(frames[0].filename, frames[0].lineno) == "student":
        return f"your code raised {text}" + (f" ({_where(frames[0])})" if frames else "")
    caller = next((f for f in frames if _origin(f.filename, f.lineno) == "student"), None)
    return (f"the given code raised {text}\n  ({_where(frames[0])}; this line is given code, not yours"
            + (f"; it was called from your code {_where(caller)}" if caller else "")
            + "). Look at what your code stores or passes to it.")


def explain(excinfo) -> str:
    """A message for a failed check, without our traceback."""
    err = excinfo.value
    if isinstance(err, (CheckFailed, GradingError)):
        return str(err)
    if isinstance(err, AssertionError) and str(err):
        return str(err).split("\nassert ")[0]
    return describe_exception(err, excinfo.tb)


# ------------------------------------------------------------------------------------------------ running pytest
_PACKAGES: dict[Path, str] = {}


def graders_package(folder: Path) -> str:
    """Import an assignment's graders folder as a package of its own (its modules import each other relatively).

    The folder is named by the assignment id, which need not be a Python name (it may start with digits), and it
    may lie in any course (a test builds one in a temporary folder), so it is loaded by path under a name of its own.
    """
    folder = Path(folder).resolve()
    if folder not in _PACKAGES:
        base = "_graders_" + re.sub(r"\W", "_", folder.name)
        name, n = base, 1
        while name in sys.modules:
            n += 1
            name = f"{base}_{n}"
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _PACKAGES[folder] = name
    return _PACKAGES[folder]


class _GraderModule(pytest.Module):
    """A graders' module, imported as part of its assignment's package (see :func:`graders_package`)."""

    def _getobj(self):
        return importlib.import_module(f"{graders_package(self.path.parent)}.{self.path.stem}")


class GraderPlugin:
    """pytest plugin: imports the graders' modules and says what their fixtures (:mod:`autograder.runtime.fixtures`)
    are:
    :meth:`context` gives the namespace to grade, the unit's reference values and the reference definitions."""

    def context(self, path: Path) -> tuple[Namespace, dict, Definitions]:
        raise NotImplementedError

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path, parent):
        if module_path.name.startswith("test_") and (module_path.parent / "__init__.py").is_file() \
                and module_path.parent.parent.name == "graders":
            return _GraderModule.from_parent(parent, path=module_path)
        return None


class _Collector(GraderPlugin):
    """Grades one unit: hands over the live namespace, values and reference; records one result per check."""

    def __init__(self, namespace: Namespace, values: dict, ref: Definitions):
        self._context = (namespace, values, ref)
        self.results: dict[str, Result] = {}

    def context(self, path):
        return self._context

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        name = _title(item)
        if report.failed:  # the first failing phase (setup or call) explains the failure
            if name not in self.results or self.results[name].passed:
                message = explain(call.excinfo) if call.excinfo else report.longreprtext
                self.results[name] = Result(name, False, message)
        elif report.when == "call":
            self.results.setdefault(name, Result(name, True, ""))


def run_graders(module: Path, *plugins) -> int:
    """Run one pytest module of graders quietly with ``plugins``; returns pytest's exit code."""
    args = [str(module), "-q", "--capture=no", "-o", "addopts=", "--noconftest", "--rootdir", str(COURSE_ROOT),
            "-W", "ignore"]
    for name in PYTEST_OFF:
        args += ["-p", f"no:{name}"]
    from autograder.runtime import fixtures

    return pytest.main(args, plugins=[fixtures, *plugins])


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


def grade_unit(unit: str, names: dict, *, reference: Definitions, graders: Path, part: str, values: dict,
               plugins=()) -> list[Result]:
    """Run the graders of ``unit`` (``graders/test_<unit>.py``) against the live definitions in ``names``.

    ``values`` are the unit's reference values; ``plugins`` are further pytest plugins (a grading process adds a
    guard that checks after every check that the graders were not modified).
    """
    collector = _Collector(Namespace(names, unit, part), values, reference)
    with _isolated(), _substituted(names, {**reference.others(unit), "tqdm": _silent_tqdm}):
        torch.set_grad_enabled(True)
        code = run_graders(Path(graders) / f"test_{unit}.py", collector, *plugins)
    results = list(collector.results.values())
    if code not in (0, 1) or not results:  # pytest itself failed: a usage error or no test collected
        results.append(Result("the graders ran", False, f"pytest exited with code {code}; report this to your "
                              "instructor"))
    return results


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

