"""The grading engine: one submitted notebook in, one verdict out. Every way of grading uses it.

``python -m autograder grade``, ``python -m autograder autograde`` (a class) and plain ``nbgrader autograde`` (through
the course's ``nbgrader_config.py``) all call :meth:`Engine.grade`, so a notebook gets the same points per test
cell from each. Grading one submission:

1. **Inspected, never trusted** (:mod:`autograder.assignment.submission`, in this process): invalid or missing files and
   tampered test cells are found without running anything, and the *program* is derived: the student's notebook as
   they wrote it, minus the given experiments and the test cells.
2. **Graded in the sandbox** (:mod:`autograder.sandbox`, :mod:`autograder.worker`): each unit in its own process,
   which runs the student's program, the unit's visible test cell at its place, and the unit's graders.
3. **Scored** in this process (:mod:`autograder.grading.scoring`): a visible test cell earns its points when the
   instructor's code of that cell passed in the student's program; a hidden one when every check of the unit's
   graders passed. A unit whose process was tampered with, ran out of time or memory, or crashed scores zero and
   says why. A unit whose failed checks are exactly those of one of the assignment's planted bugs is given that
   bug's name (:mod:`autograder.grading.diagnosis`). The verdict is a :class:`~autograder.grading.verdict.Verdict`.

The worker processes (*slots*) are started once and grade one submission after another: each submission still
gets fresh processes (forked from the slot's warm state) and a clean scratch space, and nothing it does reaches the
next one. A class is spread over ``workers`` slots; a single notebook uses one.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment import submission
from autograder.assignment.course import COURSE_ROOT, Assignment, source_of
from autograder.grading import diagnosis
from autograder.grading.scoring import score
from autograder.grading.verdict import Status, UnitRun, Verdict
from autograder.sandbox.isolation import Confined, Limits, Sandbox, probe
from autograder.worker.messages import frame

STARTUP_SECONDS = 300   # time a slot may take to start (imports) before it counts as broken
MARGIN = 30             # seconds the engine waits beyond a submission's limit for its slot to answer


@dataclass
class Settings:
    limits: Limits
    workers: int = 1         # submissions graded at once (one slot each)
    sandbox: bool = True     # use bubblewrap where it works
    cores: int = 0           # CPU cores to share among the slots (0: all)


def preload_modules(nb: dict) -> list[str]:
    """The top-level modules the notebook's setup cells import: a slot imports them once for every submission."""
    found = []
    for cell in nb["cells"]:
        if "setup" not in cell.get("metadata", {}).get("tags", []):
            continue
        with contextlib.suppress(SyntaxError):
            for node in ast.walk(ast.parse(source_of(cell))):
                if isinstance(node, ast.Import):
                    found += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.append(node.module)
    return list(dict.fromkeys(found))


class Slot:
    """One warm worker process in the sandbox, grading one submission at a time."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.process: Confined | None = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None

    def start_soon(self) -> None:
        """Start the worker in the background (its imports take seconds; the caller goes on meanwhile)."""
        def start():
            try:
                self._start()
            except BaseException as err:  # noqa: BLE001 - reported when the slot is used
                self._start_error = err

        self._starting = threading.Thread(target=start, daemon=True)
        self._starting.start()

    def _ready(self) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
            if self._start_error is not None:
                error, self._start_error = self._start_error, None
                raise RuntimeError(str(error))
        if self.process is None or not self.process.alive():
            self._start()

    def _start(self) -> None:
        engine = self.engine
        path = os.pathsep.join(dict.fromkeys([str(engine.assignment.root), str(COURSE_ROOT)]))
        env = {"PATH": os.defpath, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": str(engine.threads), "MPLBACKEND": "Agg",
               "HOME": "/tmp" if engine.sandbox.isolation.bubblewrap else os.environ.get("HOME", "/tmp"),
               "LC_ALL": "C.UTF-8"}
        memory = engine.limits.memory_mb * engine.parallel + 1536  # the units at once, and the worker itself
        self.process = engine.sandbox.start([sys.executable, "-m", "autograder.worker"], env=env, memory_mb=memory)
        init = {**engine.init, **engine.sandbox.cgroup_files(self.process)}
        started = time.monotonic()
        if not self.process.write(frame(init)):
            raise RuntimeError(self._died("could not start"))
        while True:
            event = self._next(started + STARTUP_SECONDS)
            if event is None:
                raise RuntimeError(self._died("did not start"))
            if event.get("event") == "ready":
                return

    def _died(self, what: str) -> str:
        tail = bytes(self.process.stderr).decode(errors="replace")[-1500:] if self.process else ""
        self.close()
        return f"the grading process {what}: {tail.strip() or 'no message'}"

    def _next(self, deadline: float) -> dict | None:
        """The next event of the worker (None: it ended, or the deadline passed)."""
        while True:
            try:
                line = self.process.next_line(deadline - time.monotonic())
            except queue.Empty:
                return None
            if line is None:
                return None
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    return event

    def run(self, program: list[dict]) -> tuple[dict[str, UnitRun], dict]:
        """Grade one submission's program; returns the worker's report per unit and facts about the run."""
        self._ready()
        engine = self.engine
        limits = engine.limits
        job = {"program": program, "units": list(engine.assignment.units), "timeout": limits.timeout,
               "cell_seconds": min(limits.cell_seconds, limits.timeout / (2 * len(engine.assignment.units))),
               "parallel": engine.parallel, "threads": 1, "memory_mb": limits.memory_mb}
        started = time.monotonic()
        deadline = started + limits.timeout + MARGIN
        runs, problems, done = {}, [], False
        self.process.write(frame(job))
        while not done:
            event = self._next(deadline)
            if event is None:
                break
            kind = event.get("event")
            if kind == "frame" and event.get("unit") in engine.frames:
                self.process.write(engine.frames[event["unit"]])
            elif kind == "unit" and event.get("unit") in engine.assignment.units:
                runs[event["unit"]] = UnitRun.from_event(event)
            elif kind == "job-done":
                problems, done = event.get("problems", []), True
        facts = {"finished": done, "timed_out": not done and time.monotonic() >= deadline,
                 "seconds": round(time.monotonic() - started, 2), "problems": problems}
        if not done:  # the worker died or hung: start a fresh one for the next submission
            facts["stderr"] = bytes(self.process.stderr).decode(errors="replace")[-2000:]
            facts["out_of_memory"] = self.process.out_of_memory()
            self.close()
        return runs, facts

    def close(self) -> None:
        if self._starting is not None and self._starting is not threading.current_thread():
            self._starting.join()  # a worker still starting is stopped once it is there
        if self.process is not None:
            self.process.close()
            self.process = None


def not_graded(assignment: Assignment, why: str) -> Verdict:
    """The verdict of a submission nothing of which could be graded, for a reason outside the student's code."""
    found = submission.Submission(status=Status.NOT_GRADED, problems=[why])
    verdict = score(assignment, found, {}, {})
    verdict.seconds = 0.0
    return verdict


class Engine:
    """Grades submissions of one assignment (thread-safe: up to ``workers`` at once)."""

    def __init__(self, assignment: Assignment, settings: Settings | None = None, hide: list[Path] = ()):
        self.assignment = assignment
        self.settings = settings or Settings(Limits())
        self.limits = self.settings.limits
        assignment.grader_check()
        cores = self.settings.cores or os.cpu_count() or 1
        self.workers = max(1, self.settings.workers)
        self.parallel = max(1, cores // self.workers)  # units of one submission graded at once
        self.threads = 1
        self.sandbox = Sandbox(hide=[*assignment.private_files(), *hide], limits=self.limits,
                               isolation=probe(self.settings.sandbox), keep=[assignment.root])
        self.init = {"assignment": assignment.id, "graders": str(assignment.graders_dir),
                     "units": assignment.units, "env": assignment.environment(), "root": str(assignment.root),
                     "preload": preload_modules(assignment.solution), "protected": [str(p) for p in self.sandbox.hide],
                     "pid_namespace": bool(self.sandbox.isolation.bubblewrap),
                     "private_tmp": bool(self.sandbox.isolation.bubblewrap)}
        self.signatures = diagnosis.load(assignment)  # the planted bugs' failures, to name a unit's likely bug
        values = assignment.values
        self.frames = {unit: frame({"unit": unit, "reference": assignment.reference_notebook(unit),
                                    "values": values.get(unit, {})}) for unit in assignment.units}
        self._idle: queue.Queue = queue.Queue()
        self._slots = [Slot(self) for _ in range(self.workers)]
        for slot in self._slots:
            slot.start_soon()
            self._idle.put(slot)

    @property
    def warnings(self) -> list[str]:
        return self.sandbox.warnings

    def grade_file(self, path: Path) -> tuple[Verdict, bytes | None]:
        """Grade the notebook at ``path``; returns the verdict and the bytes graded (no file there: ``missing``; a
        file that cannot be read: ``not-graded``, saying what to check)."""
        path = Path(path)
        try:
            raw = path.read_bytes() if path.exists() else None
        except OSError as err:
            return self.not_graded(f"the file {path.name} could not be read ({type(err).__name__}: "
                                   f"{err.strerror or err}); check its permissions and grade it again"), None
        return self.grade(raw, path.name), raw

    def not_graded(self, why: str) -> Verdict:
        return not_graded(self.assignment, why)

    def grade(self, raw: bytes | None, name: str | None = None) -> Verdict:
        """Grade one submitted notebook (its bytes; None: nothing submitted); returns the verdict, whatever the
        notebook holds (a failure of the grader itself is the verdict ``not-graded``, never an exception)."""
        started = time.monotonic()
        step = "reading"
        try:
            found = submission.inspect(raw, self.assignment, name)
            runs, facts = {}, {}
            if not found.status:
                step = "grading"
                slot = self._idle.get()
                try:
                    runs, facts = slot.run(found.program)
                except RuntimeError as err:  # the worker could not start: every unit is reported, none is graded
                    facts = {"finished": False, "startup_error": str(err), "problems": []}
                finally:
                    self._idle.put(slot)
            step = "scoring"
            verdict = score(self.assignment, found, runs, facts)
            step = "naming the likely bugs of"
            verdict.diagnoses = diagnosis.diagnose(verdict, self.signatures)
        except Exception as err:  # noqa: BLE001 - the grader's own failure on one notebook is that notebook's verdict
            return self.not_graded(f"the grader failed while {step} this notebook ({type(err).__name__}: {err}); "
                                   "nothing of it was scored; keep the file for the course's maintainers")
        verdict.seconds = round(time.monotonic() - started, 2)
        return verdict

    def close(self) -> None:
        for slot in self._slots:
            slot.close()
